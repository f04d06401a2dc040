"""The wire bytes of the hand-built ``mesh/digest_pb2.py``, before protoc generated it.

Each constant below was encoded by that module (commit bf4cfc5) from the messages defined
here. The generated module must read them back as the same messages and write the same
bytes: the switch to protoc changed no field, number or type on the wire.
"""

from __future__ import annotations

from mesh import digest_pb2 as pb
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.digest import decode_gossip, encode_gossip
from mesh.messages import (
    HealthDigest,
    LeaveNotice,
    MemberEntry,
    MemberState,
    SignedNotice,
    SuspectNotice,
    ViewSnapshot,
)
from mesh.model import Status
from mesh.signed import FakeEnvelopes
from mesh.snapshot_codec import decode_snapshot, encode_snapshot

NOW_MS = 1_700_000_000_000
NOW = NOW_MS / 1000
STARTED_MS = NOW_MS - 3_600_000
A = "12D3KooWAlice"
B = "12D3KooWBob"
CONFIG = ClusterConfig(max_clock_skew=30.0, max_message_age=60.0)
ENVELOPES = FakeEnvelopes()

DIGEST = HealthDigest(
    node_id=A,
    start_time_ms=STARTED_MS,
    incarnation=2,
    seq=17,
    status=Status.DEGRADED,
    score=0.75,
    components={"p2p": 1.0, "disk": 0.5},
    sent_at_ms=NOW_MS,
    version="v0.1.0",
    http_addr="10.0.0.5:8081",
    p2p_addrs=("/ip4/10.0.0.5/tcp/9000", "/ip4/127.0.0.1/tcp/9000"),
    certificate=MemberCertificate(A, NOW_MS + 86_400_000, bytes(range(64))),
)
SUSPECT = SuspectNotice(A, B, STARTED_MS, 1, 40, NOW_MS)
LEAVE = LeaveNotice(A, STARTED_MS, 2, 18, NOW_MS)
BOB = HealthDigest(node_id=B, start_time_ms=STARTED_MS, seq=3, sent_at_ms=NOW_MS - 5000)
BOB_LEAVE = LeaveNotice(B, STARTED_MS, 0, 4, NOW_MS - 1000)


# Encoded by the hand-built module: encode_gossip(DIGEST), (SUSPECT), (LEAVE) and
# encode_snapshot(SNAPSHOT).
OLD_DIGEST = bytes.fromhex(
    "080112e0010a0d313244334b6f6f57416c6963651080f3b9fdbc3118022011280231000000000000"
    "e83f3a0f0a046469736b11000000000000e03f3a0e0a0370327011000000000000f03f4080d095ff"
    "bc314a0676302e312e30520d31302e302e302e353a383038315a162f6970342f31302e302e302e35"
    "2f7463702f393030305a172f6970342f3132372e302e302e312f7463702f393030306249088088af"
    "a8bd311240000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122"
    "232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
)
OLD_SUSPECT = bytes.fromhex(
    "08011a2e0a0d313244334b6f6f57416c696365120b313244334b6f6f57426f621880f3b9fdbc3120"
    "0128283080d095ffbc31"
)
OLD_LEAVE = bytes.fromhex(
    "080122210a0d313244334b6f6f57416c6963651080f3b9fdbc31180220122880d095ffbc31"
)
OLD_SNAPSHOT = bytes.fromhex(
    "0801120d313244334b6f6f57416c6963651880d095ffbc3122870210013a820246414b452d454e56"
    "454c4f504500000d313244334b6f6f57416c696365080112e0010a0d313244334b6f6f57416c6963"
    "651080f3b9fdbc3118022011280231000000000000e83f3a0f0a046469736b11000000000000e03f"
    "3a0e0a0370327011000000000000f03f4080d095ffbc314a0676302e312e30520d31302e302e302e"
    "353a383038315a162f6970342f31302e302e302e352f7463702f393030305a172f6970342f313237"
    "2e302e302e312f7463702f393030306249088088afa8bd311240000102030405060708090a0b0c0d"
    "0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435"
    "363738393a3b3c3d3e3f22da0110043a4746414b452d454e56454c4f504500000b313244334b6f6f"
    "57426f62080112280a0b313244334b6f6f57426f621080f3b9fdbc312003280131000000000000f0"
    "3f40f8a895ffbc31424f46414b452d454e56454c4f504500000d313244334b6f6f57416c69636508"
    "011a2e0a0d313244334b6f6f57416c696365120b313244334b6f6f57426f621880f3b9fdbc312001"
    "28283080d095ffbc314a3c46414b452d454e56454c4f504500000b313244334b6f6f57426f620801"
    "221d0a0b313244334b6f6f57426f621080f3b9fdbc3120042898c895ffbc31"
)


def _sealed(author: str, message: HealthDigest | SuspectNotice | LeaveNotice) -> bytes:
    # As the hand-built module wrote them (DIGEST's components have a newer form since).
    return ENVELOPES.seal(author, OLD_DIGEST if message is DIGEST else encode_gossip(message))


SNAPSHOT = ViewSnapshot(
    A,
    NOW_MS,
    (
        MemberEntry(DIGEST, MemberState.ALIVE, _sealed(A, DIGEST)),
        MemberEntry(
            BOB,
            MemberState.LEFT,
            _sealed(B, BOB),
            BOB_LEAVE,
            _sealed(B, BOB_LEAVE),
            (SignedNotice(SUSPECT, _sealed(A, SUSPECT)),),
        ),
    ),
)


def test_old_gossip_bytes_decode_to_the_same_messages() -> None:
    assert decode_gossip(OLD_DIGEST, A, NOW, config=CONFIG) == DIGEST
    assert decode_gossip(OLD_SUSPECT, A, NOW, config=CONFIG) == SUSPECT
    assert decode_gossip(OLD_LEAVE, A, NOW, config=CONFIG) == LEAVE


def test_old_gossip_bytes_are_what_we_encode_now() -> None:
    assert encode_gossip(SUSPECT) == OLD_SUSPECT
    assert encode_gossip(LEAVE) == OLD_LEAVE
    # A digest's well-known components moved to fields 14 and 15 (mesh/component_table.py);
    # everything else is as it was.
    wire = pb.Gossip.FromString(encode_gossip(DIGEST))
    assert wire.digest.whole_components == 1 << 0  # "p2p" at 1.0
    assert dict(wire.digest.components) == {"disk": 0.5}  # not in the table
    wire.digest.whole_components = 0
    wire.digest.components["p2p"] = 1.0
    assert wire.SerializeToString(deterministic=True) == OLD_DIGEST


def test_old_snapshot_bytes_decode_to_the_same_view_and_encode_back() -> None:
    decoded = decode_snapshot(OLD_SNAPSHOT, A, NOW, verify=ENVELOPES.open, config=CONFIG)
    assert isinstance(decoded, ViewSnapshot)
    assert decoded.responder_id == A and decoded.sent_at_ms == NOW_MS
    assert not decoded.truncated
    by_id = {entry.digest.node_id: entry for entry in decoded.members}
    assert by_id[A].digest == DIGEST and by_id[A].state is MemberState.ALIVE
    assert by_id[B].digest == BOB and by_id[B].leave == BOB_LEAVE
    assert by_id[B].state is MemberState.LEFT
    assert [s.notice for s in by_id[B].suspicions] == [SUSPECT]
    assert encode_snapshot(SNAPSHOT) == OLD_SNAPSHOT


def test_old_bytes_parse_field_by_field() -> None:
    # Below our validation: the raw generated classes see every field where it was.
    wire = pb.Gossip.FromString(OLD_DIGEST)
    assert wire.schema_version == 1 and wire.WhichOneof("body") == "digest"
    assert wire.digest.status == pb.NODE_STATUS_DEGRADED
    assert dict(wire.digest.components) == {"p2p": 1.0, "disk": 0.5}
    assert wire.digest.certificate.signature == bytes(range(64))
    assert wire.SerializeToString(deterministic=True) == OLD_DIGEST
    view = pb.ViewSnapshot.FromString(OLD_SNAPSHOT)
    assert [m.state for m in view.members] == [pb.MEMBER_STATE_ALIVE, pb.MEMBER_STATE_LEFT]
    assert view.SerializeToString(deterministic=True) == OLD_SNAPSHOT
