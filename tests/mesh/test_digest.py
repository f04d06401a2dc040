from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from mesh import component_table
from mesh import digest_pb2 as pb
from mesh.cluster_config import ClusterConfig
from mesh.digest import SCHEMA_VERSION, EncodeError, decode_gossip, encode_gossip
from mesh.messages import (
    Gossip,
    HealthDigest,
    LeaveNotice,
    MemberEntry,
    MemberState,
    SignedNotice,
    SuspectNotice,
    Version,
    ViewSnapshot,
)
from mesh.model import Status
from mesh.rejection import Rejection, RejectReason
from mesh.sequencer import Sequencer
from mesh.signed import FakeEnvelopes
from mesh.snapshot_codec import (
    PULL_REQUEST,
    PullAsk,
    decode_snapshot,
    encode_snapshot,
    parse_pull_request,
    pull_request,
)
from mesh.wire_bounds import (
    MAX_COUNTER,
    MAX_GOSSIP_BYTES,
    MAX_SNAPSHOT_BYTES,
    MAX_SUSPICIONS,
    MAX_TIME_MS,
)

NOW = 1_700_000_000.0  # Unix seconds
NOW_MS = 1_700_000_000_000
STARTED_MS = NOW_MS - 3_600_000  # an hour ago
A = "12D3KooWAlice"
B = "12D3KooWBob"
CONFIG = ClusterConfig(max_clock_skew=30.0, max_message_age=60.0)


def digest(**changes: Any) -> HealthDigest:
    base = HealthDigest(
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
    )
    return dataclasses.replace(base, **changes)


SUSPECT = SuspectNotice(
    observer_id=A,
    suspect_id=B,
    suspect_start_time_ms=STARTED_MS,
    suspect_incarnation=1,
    suspect_seq=40,
    sent_at_ms=NOW_MS,
)
LEAVE = LeaveNotice(node_id=A, start_time_ms=STARTED_MS, incarnation=2, seq=18, sent_at_ms=NOW_MS)


def decode(data: bytes, signer: str = A, now: float = NOW) -> Gossip | Rejection:
    return decode_gossip(data, signer, now, config=CONFIG)


ENVELOPES = FakeEnvelopes()


def sealed(message: Gossip) -> bytes:
    author = message.observer_id if isinstance(message, SuspectNotice) else message.node_id
    return ENVELOPES.seal(author, encode_gossip(message))


def pull(data: bytes, responder: str = A, now: float = NOW) -> ViewSnapshot | Rejection:
    return decode_snapshot(data, responder, now, verify=ENVELOPES.open, config=CONFIG)


def reason(result: object) -> RejectReason | None:
    return result.reason if isinstance(result, Rejection) else None


def wire_digest(**fields: Any) -> bytes:
    """A Gossip with a digest built straight from protobuf, bypassing our validation."""
    values: dict[str, Any] = {
        "node_id": A,
        "start_time_ms": STARTED_MS,
        "incarnation": 0,
        "seq": 1,
        "status": pb.NodeStatus.Value("NODE_STATUS_HEALTHY"),
        "score": 1.0,
        "sent_at_ms": NOW_MS,
    }
    values.update(fields)
    components = values.pop("components", {})
    indexed = values.pop("indexed_components", {})
    addrs = values.pop("p2p_addrs", [])
    schema = values.pop("schema_version", SCHEMA_VERSION)
    message = pb.Gossip(schema_version=schema, digest=pb.HealthDigest(**values))
    for name, score in components.items():
        message.digest.components[name] = score
    for index, score in indexed.items():
        message.digest.indexed_components[index] = score
    message.digest.p2p_addrs.extend(addrs)
    data: bytes = message.SerializeToString()
    return data


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        digest(),
        digest(components={}, p2p_addrs=(), version="", http_addr="", incarnation=0, seq=0),
        *(digest(status=status) for status in Status),
        digest(local_health=64),
        SUSPECT,
        LEAVE,
    ],
    ids=lambda m: type(m).__name__,
)
def test_gossip_round_trips(message: Gossip) -> None:
    author = message.observer_id if isinstance(message, SuspectNotice) else message.node_id
    assert decode(encode_gossip(message), signer=author) == message


def test_encoding_is_deterministic_and_small() -> None:
    data = encode_gossip(digest())
    assert data == encode_gossip(digest())
    # A realistic digest is a few hundred bytes: the 4 KiB limit has room to spare.
    assert len(data) < 300


def test_sequencer_orders_own_statements() -> None:
    me = Sequencer(A, STARTED_MS)
    first = me.digest(NOW, status=Status.HEALTHY, score=1.0)
    second = me.digest(NOW + 1, status=Status.HEALTHY, score=1.0, components={"p2p": 0.5})
    me.refute(3)
    refuting = me.digest(NOW + 2, status=Status.HEALTHY, score=1.0)
    leave = me.leave(NOW + 3)
    assert [first.key, second.key, refuting.key, leave.key] == [
        Version(STARTED_MS, 0, 1),
        Version(STARTED_MS, 0, 2),
        Version(STARTED_MS, 3, 3),
        Version(STARTED_MS, 3, 4),
    ]
    assert first.key < second.key < refuting.key < leave.key
    assert second.sent_at_ms == NOW_MS + 1000
    me.refute(1)  # never lowers
    assert me.incarnation == 3
    notice = me.suspect(B, Version(STARTED_MS, 1, 9), NOW)
    assert notice.basis == Version(STARTED_MS, 1, 9) and me.seq == 4
    assert decode(encode_gossip(notice)) == notice


# --- rejections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff" * 10, RejectReason.MALFORMED),
        (b"\x0a\x80", RejectReason.MALFORMED),  # truncated length-delimited field
        (pb.Gossip(schema_version=1).SerializeToString(), RejectReason.MALFORMED),  # no body
        (b"", RejectReason.UNSUPPORTED_VERSION),  # everything unset: version 0
        (wire_digest(schema_version=0), RejectReason.UNSUPPORTED_VERSION),
        (wire_digest(schema_version=2), RejectReason.UNSUPPORTED_VERSION),
        (b"\x08\x01" + b"\x00" * MAX_GOSSIP_BYTES, RejectReason.OVERSIZED),
        (wire_digest(node_id=B), RejectReason.SIGNER_MISMATCH),
        (wire_digest(sent_at_ms=NOW_MS + 30_001), RejectReason.FUTURE),
        (wire_digest(start_time_ms=NOW_MS + 31_000), RejectReason.FUTURE),
        (wire_digest(sent_at_ms=NOW_MS - 60_001), RejectReason.STALE),
    ],
)
def test_rejections(data: bytes, expected: RejectReason) -> None:
    assert reason(decode(data)) is expected


def test_time_limits_are_inclusive() -> None:
    assert isinstance(decode(wire_digest(sent_at_ms=NOW_MS + 30_000)), HealthDigest)
    assert isinstance(decode(wire_digest(sent_at_ms=NOW_MS - 60_000)), HealthDigest)


@pytest.mark.parametrize(
    "fields",
    [
        {"node_id": ""},
        {"node_id": "12D3 KooW"},
        {"node_id": "Qm" + "x" * 127},
        {"status": 0},  # unspecified
        {"status": 99},  # unknown to us
        {"score": 1.5},
        {"score": -0.01},
        {"score": float("nan")},
        {"score": float("inf")},
        {"start_time_ms": 0},
        {"start_time_ms": -5},
        {"sent_at_ms": 0},
        {"components": {"p2p": 1.01}},
        {"components": {"p2p": float("nan")}},
        {"components": {"bad name": 1.0}},
        {"components": {"": 1.0}},
        {"components": {f"c{i}": 1.0 for i in range(33)}},
        # The table's names (mesh/component_table.py: "p2p" is entry 0) once in all fields.
        {"whole_components": 1, "components": {"p2p": 1.0}},
        {"whole_components": 1, "indexed_components": {0: 0.5}},
        {"indexed_components": {0: 0.5}, "components": {"p2p": 0.5}},
        {"indexed_components": {0: 1.5}},
        {"indexed_components": {0: float("nan")}},
        {"indexed_components": {i: 0.5 for i in range(33)}},
        {"whole_components": 2**32 - 1, "components": {f"c{i}": 1.0 for i in range(22)}},
        {"version": "v1\n"},
        {"version": "v" * 65},
        {"http_addr": "10.0.0.5 :8081"},
        # Whitespace of every kind: tab, no-break space, line separator, ideographic space.
        {"version": "v1\t2"},
        {"version": "v1\u00a02"},
        {"http_addr": "10.0.0.5\u2028:8081"},
        {"p2p_addrs": ["/ip4/10.0.0.5/tcp/9000\u3000"]},
        {"p2p_addrs": ["ip4/10.0.0.5/tcp/9000"]},
        {"p2p_addrs": [f"/ip4/10.0.0.{i}/tcp/9000" for i in range(17)]},
        {"local_health": 65},
        {"local_health": 2**32 - 1},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_invalid_digest_fields(fields: dict[str, Any]) -> None:
    signer = fields.get("node_id", A)
    assert reason(decode(wire_digest(**fields), signer=signer)) is RejectReason.INVALID_FIELD


def test_a_valid_wire_digest_is_accepted() -> None:
    # The control for the table above: the same builder with nothing wrong passes.
    assert isinstance(decode(wire_digest()), HealthDigest)


def test_well_known_components_travel_as_indexes_and_come_back_as_names() -> None:
    healthy = {name: 1.0 for name in component_table.TABLE}
    mixed = {**healthy, "dht": 0.996, "election": 0.0, "app-queue": 0.5}
    for components in (healthy, mixed, {"app-queue": 1.0}, {}):
        message = digest(components=components)
        data = encode_gossip(message)
        assert decode(data) == message
        wire = pb.Gossip.FromString(data).digest
        assert set(wire.components) <= {"app-queue"}  # no table name as a string
    # Every table name at 1.0 costs one varint, not ~200 bytes of names and doubles.
    assert len(encode_gossip(digest(components=healthy))) < len(encode_gossip(digest())) + 4


def test_table_indexes_a_newer_peer_added_are_left_out() -> None:
    beyond = len(component_table.TABLE)
    data = wire_digest(
        whole_components=1 | 1 << beyond | 1 << 31, indexed_components={beyond: 0.5, 1: 0.25}
    )
    received = decode(data)
    assert isinstance(received, HealthDigest)
    assert received.components == {"p2p": 1.0, "pubsub": 0.25}


@pytest.mark.parametrize(
    ("message", "signer"),
    [
        (SUSPECT, B),  # the suspect cannot speak for the observer
        (dataclasses.replace(LEAVE, node_id=B), A),  # nobody leaves on another's behalf
        (digest(), B),
    ],
    ids=["suspect", "leave", "digest"],
)
def test_author_must_be_the_signer(message: Gossip, signer: str) -> None:
    assert reason(decode(encode_gossip(message), signer=signer)) is RejectReason.SIGNER_MISMATCH


@pytest.mark.parametrize(
    "message",
    [
        dataclasses.replace(SUSPECT, suspect_id=A),  # suspecting oneself
        dataclasses.replace(SUSPECT, suspect_id="not/a/peer"),
        dataclasses.replace(SUSPECT, suspect_start_time_ms=0),
        dataclasses.replace(LEAVE, start_time_ms=0),
        dataclasses.replace(LEAVE, seq=-1),
        digest(score=2.0),
        digest(components={"x y": 1.0}),
    ],
)
def test_encoding_refuses_what_peers_would_reject(message: Gossip) -> None:
    with pytest.raises(EncodeError):
        encode_gossip(message)


def test_encoding_refuses_oversized_digests() -> None:
    # Each address is valid on its own; together they are far over 4 KiB.
    addrs = tuple(f"/dns4/{'h' * 230}.example/tcp/{i}" for i in range(16))
    with pytest.raises(EncodeError, match="bytes"):
        encode_gossip(digest(p2p_addrs=addrs))


def test_future_and_stale_notices() -> None:
    future = dataclasses.replace(SUSPECT, sent_at_ms=NOW_MS + 31_000)
    stale = dataclasses.replace(LEAVE, sent_at_ms=NOW_MS - 61_000)
    assert reason(decode(encode_gossip(future))) is RejectReason.FUTURE
    assert reason(decode(encode_gossip(stale))) is RejectReason.STALE


# --- hostile bytes ----------------------------------------------------------------------


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20240611)
    reasons: set[RejectReason] = set()
    for _ in range(3000):
        data = rng.randbytes(rng.randrange(0, 200))
        result = decode(data)
        assert isinstance(result, Rejection | HealthDigest | SuspectNotice | LeaveNotice)
        if isinstance(result, Rejection):
            reasons.add(result.reason)
    assert RejectReason.MALFORMED in reasons


def test_mutated_messages_never_raise() -> None:
    rng = random.Random(7)
    seeds = [encode_gossip(digest()), encode_gossip(SUSPECT), encode_gossip(LEAVE)]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            action = rng.randrange(3)
            if action == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif action == 1 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        result = decode(bytes(data))
        if not isinstance(result, Rejection):
            # Whatever got through must re-encode: it passed every check we make.
            encode_gossip(result)
        assert isinstance(pull(bytes(data)), Rejection | ViewSnapshot)


def test_non_bytes_are_rejected() -> None:
    assert reason(decode_gossip("text", A, NOW)) is RejectReason.MALFORMED  # type: ignore[arg-type]
    assert reason(pull(None)) is RejectReason.MALFORMED  # type: ignore[arg-type]


# --- snapshots --------------------------------------------------------------------------


def entry(node: str, state: MemberState, **changes: Any) -> MemberEntry:
    """A member entry as a responder builds it: sealed statements of their authors."""
    d = digest(node_id=node, **changes)
    leave = None
    if state is MemberState.LEFT:
        leave = LeaveNotice(node, d.start_time_ms, d.incarnation, d.seq + 1, d.sent_at_ms)
    suspicions: tuple[SignedNotice, ...] = ()
    if state in (MemberState.SUSPECT, MemberState.DEAD) and node != B:
        notice = SuspectNotice(B, node, d.start_time_ms, d.incarnation, d.seq, NOW_MS)
        suspicions = (SignedNotice(notice, sealed(notice)),)
    return MemberEntry(
        digest=d,
        state=state,
        statement=sealed(d),
        leave=leave,
        leave_statement=sealed(leave) if leave is not None else b"",
        suspicions=suspicions,
    )


def snapshot(*entries: MemberEntry, responder: str = A) -> ViewSnapshot:
    return ViewSnapshot(responder_id=responder, sent_at_ms=NOW_MS, members=entries)


def test_snapshot_round_trips() -> None:
    view = snapshot(
        entry(A, MemberState.ALIVE),
        entry(B, MemberState.ALIVE),
        entry("QmCarol", MemberState.SUSPECT),
        entry("QmDan", MemberState.DEAD, status=Status.UNHEALTHY),
        entry("QmDave", MemberState.LEFT, status=Status.STOPPING),
    )
    decoded = pull(encode_snapshot(view))
    assert decoded == view
    carol = decoded.members[2]  # type: ignore[union-attr]
    assert carol.suspected_by == (B,) and carol.key == carol.digest.key
    dave = decoded.members[4]  # type: ignore[union-attr]
    assert dave.key.seq == dave.digest.seq + 1


def test_snapshot_leaves_out_what_it_cannot_prove() -> None:
    unsigned = dataclasses.replace(entry(B, MemberState.ALIVE), statement=b"")
    carol = entry("QmCarol", MemberState.SUSPECT)
    hearsay = dataclasses.replace(
        carol, suspicions=(SignedNotice(carol.suspicions[0].notice, b""),)
    )
    decoded = pull(encode_snapshot(snapshot(entry(A, MemberState.ALIVE), unsigned, hearsay)))
    assert isinstance(decoded, ViewSnapshot)
    assert [e.digest.node_id for e in decoded.members] == [A, "QmCarol"]
    assert decoded.members[1].suspicions == ()


def _pages(members: list[MemberEntry], max_bytes: int) -> list[ViewSnapshot]:
    """A whole view pulled page by page, as a client follows next_after."""
    pages: list[ViewSnapshot] = []
    after = ""
    while len(pages) < 100:
        rest = [e for e in members if e.digest.node_id > after]
        data = encode_snapshot(snapshot(*rest), max_bytes=max_bytes)
        assert len(data) <= max_bytes
        page = decode_snapshot(data, A, NOW, verify=ENVELOPES.open, config=CONFIG, after=after)
        assert isinstance(page, ViewSnapshot)
        pages.append(page)
        if not page.next_after:
            return pages
        after = page.next_after
    raise AssertionError("paging did not end")


def test_a_view_too_large_for_one_snapshot_goes_in_pages_by_member_id() -> None:
    members = [entry(f"QmLeft{i}", MemberState.LEFT) for i in range(10)]
    members += [entry(f"QmAlive{i}", MemberState.ALIVE) for i in range(10)]
    members.append(entry("QmDead", MemberState.DEAD))
    full = encode_snapshot(snapshot(*members))
    whole = pull(full)
    assert isinstance(whole, ViewSnapshot) and not whole.truncated and not whole.next_after
    pages = _pages(members, len(full) // 3)
    assert len(pages) >= 3
    listed = [e for page in pages for e in page.members]
    assert [e.digest.node_id for e in listed] == sorted(e.digest.node_id for e in members)
    assert {e.digest.node_id: e for e in listed} == {e.digest.node_id: e for e in members}
    for page in pages[:-1]:
        # Clients that do not page still see that the view was cut.
        assert page.truncated and page.next_after == page.members[-1].digest.node_id
    assert not pages[-1].truncated


def test_a_page_cut_by_the_builder_still_says_where_to_go_on() -> None:
    members = [entry(f"QmPeer{i}", MemberState.ALIVE) for i in range(3)]
    cut = dataclasses.replace(snapshot(*members[:2]), next_after="QmPeer1")
    page = pull(encode_snapshot(cut))
    assert isinstance(page, ViewSnapshot) and page.next_after == "QmPeer1" and page.truncated


def test_an_entry_too_large_for_any_page_is_left_out_and_paging_goes_on() -> None:
    small = [entry(f"QmPeer{i}", MemberState.ALIVE) for i in range(4)]
    limit = len(encode_snapshot(snapshot(*small[:2])))
    wide = {f"c{i:02d}" + "x" * 60: 1.0 for i in range(30)}
    huge = entry("QmPeer0", MemberState.ALIVE, components=wide)
    pages = _pages([huge, *small[1:]], limit)
    listed = [e.digest.node_id for page in pages for e in page.members]
    assert listed == ["QmPeer1", "QmPeer2", "QmPeer3"]


def _raw_page(members: list[MemberEntry], next_after: str) -> bytes:
    wire = pb.ViewSnapshot.FromString(encode_snapshot(snapshot(*members)))
    wire.next_after = next_after
    data: bytes = wire.SerializeToString()
    return data


@pytest.mark.parametrize(
    ("after", "next_after", "why"),
    [
        ("QmPeer1", "", "a member at or before the cursor asked for"),
        ("", "QmPeer0", "a member past the page's own end"),
        ("QmPeer5", "QmPeer4", "a cursor that goes back: the client would page for ever"),
        ("QmPeer5", "QmPeer5", "a cursor that stands still"),
        ("", "not a peer id", "a cursor that is no peer id"),
    ],
)
def test_a_page_that_breaks_the_order_is_rejected(after: str, next_after: str, why: str) -> None:
    members = [entry(f"QmPeer{i}", MemberState.ALIVE) for i in range(2)]
    if after == "QmPeer5":
        members = []
    data = _raw_page(members, next_after)
    result = decode_snapshot(data, A, NOW, verify=ENVELOPES.open, config=CONFIG, after=after)
    assert reason(result) is RejectReason.INVALID_FIELD, why


SUM = bytes(range(256)) * 2  # a summary's 512 bytes


@pytest.mark.parametrize(
    ("request_bytes", "ask"),
    [
        (PULL_REQUEST, PullAsk()),
        (pull_request(""), PullAsk()),
        (pull_request("QmPeer7"), PullAsk("QmPeer7")),
        (pull_request("", SUM), PullAsk("", SUM)),
        (pull_request("QmPeer7", SUM), PullAsk("QmPeer7", SUM)),
        (b"\x02", None),
        (b"\x02Qm Peer", None),
        (b"\x02" + b"Q" * 129, None),
        (b"\x02\xff\xfe", None),
        (b"\x03" + SUM[:-1], None),  # a summary one byte short
        (b"\x03" + SUM + b"Qm Peer", None),
        (b"\x04QmPeer7", None),
        (b"", None),
        (None, None),
    ],
)
def test_pull_requests_parse_to_what_they_ask_or_nothing(
    request_bytes: bytes | None, ask: PullAsk | None
) -> None:
    assert parse_pull_request(request_bytes) == ask


def test_snapshot_size_limit() -> None:
    many = [entry(f"QmPeer{i:04d}", MemberState.ALIVE) for i in range(1500)]
    data = encode_snapshot(snapshot(*many))
    assert len(data) <= MAX_SNAPSHOT_BYTES
    assert reason(pull(data + b"\x00" * MAX_SNAPSHOT_BYTES)) is RejectReason.OVERSIZED


def test_snapshot_member_count_bound() -> None:
    small = dataclasses.replace(CONFIG, max_members=3)
    three = encode_snapshot(snapshot(*(entry(f"QmP{i}", MemberState.ALIVE) for i in range(3))))
    four = encode_snapshot(snapshot(*(entry(f"QmP{i}", MemberState.ALIVE) for i in range(4))))
    assert isinstance(
        decode_snapshot(three, A, NOW, verify=ENVELOPES.open, config=small), (ViewSnapshot)
    )
    assert reason(decode_snapshot(four, A, NOW, verify=ENVELOPES.open, config=small)) is (
        RejectReason.INVALID_FIELD
    )


def _wire_snapshot(view: ViewSnapshot) -> Any:
    return pb.ViewSnapshot.FromString(encode_snapshot(view))


def _notice_about(member: str, observer: str) -> bytes:
    return sealed(SuspectNotice(observer, member, STARTED_MS, 0, 1, NOW_MS))


def _forged(message: Gossip) -> bytes:
    author = message.observer_id if isinstance(message, SuspectNotice) else message.node_id
    return ENVELOPES.forge(author, encode_gossip(message))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda w: setattr(w, "responder_id", B), RejectReason.SIGNER_MISMATCH),
        (lambda w: setattr(w, "schema_version", 3), RejectReason.UNSUPPORTED_VERSION),
        (lambda w: setattr(w, "sent_at_ms", NOW_MS + 60_000), RejectReason.FUTURE),
        (lambda w: w.members.append(w.members[0]), RejectReason.INVALID_FIELD),
        (lambda w: setattr(w.members[0], "state", 0), RejectReason.INVALID_FIELD),
        (lambda w: w.members[0].ClearField("digest_statement"), RejectReason.INVALID_FIELD),
        # A responder's forgery of a member's digest, signed by nobody.
        (
            lambda w: setattr(w.members[1], "digest_statement", _forged(digest(node_id=B))),
            RejectReason.FORGED,
        ),
        # A digest in B's entry signed by the responder: not B's own statement.
        (
            lambda w: setattr(
                w.members[1],
                "digest_statement",
                ENVELOPES.seal(A, encode_gossip(digest(node_id=B))),
            ),
            RejectReason.SIGNER_MISMATCH,
        ),
        (
            lambda w: setattr(w.members[0], "digest_statement", sealed(SUSPECT)),
            RejectReason.INVALID_FIELD,
        ),
        (
            lambda w: w.members[0].suspicions.append(_notice_about(B, "QmCarol")),
            RejectReason.INVALID_FIELD,
        ),  # about someone else
        (
            lambda w: w.members[0].suspicions.extend([_notice_about(A, B)] * 2),
            RejectReason.INVALID_FIELD,
        ),  # one observer twice
        (
            lambda w: w.members[0].suspicions.extend(
                [_notice_about(A, f"QmObs{i}") for i in range(MAX_SUSPICIONS + 1)]
            ),
            RejectReason.INVALID_FIELD,
        ),
        (
            lambda w: setattr(
                w.members[0], "leave_statement", sealed(dataclasses.replace(LEAVE, seq=1))
            ),
            RejectReason.INVALID_FIELD,
        ),  # a leave older than the digest
        (
            lambda w: setattr(
                w.members[0], "digest_statement", sealed(digest(start_time_ms=NOW_MS + 60_000))
            ),
            RejectReason.FUTURE,
        ),
        (
            lambda w: setattr(w.members[0], "digest_statement", b"\xff" * 6000),
            RejectReason.OVERSIZED,
        ),
    ],
)
def test_snapshot_rejections(mutate: Any, expected: RejectReason) -> None:
    wire = _wire_snapshot(snapshot(entry(A, MemberState.ALIVE), entry(B, MemberState.ALIVE)))
    mutate(wire)
    assert reason(pull(wire.SerializeToString())) is expected


def test_old_digests_in_a_snapshot_are_not_stale() -> None:
    # A dead member's last digest is old by nature; only gossip has a maximum age.
    old = entry("QmCarol", MemberState.DEAD, sent_at_ms=NOW_MS - 3_600_000)
    decoded = pull(encode_snapshot(snapshot(old)))
    assert isinstance(decoded, ViewSnapshot) and decoded.members == (old,)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("incarnation", MAX_COUNTER, True),
        ("incarnation", MAX_COUNTER + 1, False),
        ("seq", MAX_COUNTER, True),
        ("seq", MAX_COUNTER + 1, False),
        ("incarnation", 2**64 - 1, False),
    ],
)
def test_counters_are_bounded(field: str, value: int, ok: bool) -> None:
    message = digest(**{field: value})
    if ok:
        assert decode(encode_gossip(message)) == message
    else:
        with pytest.raises(EncodeError):
            encode_gossip(message)
        wire = pb.Gossip(schema_version=SCHEMA_VERSION)
        wire.digest.CopyFrom(pb.Gossip.FromString(encode_gossip(digest())).digest)
        setattr(wire.digest, field, value)
        assert reason(decode(wire.SerializeToString())) is RejectReason.INVALID_FIELD


@pytest.mark.parametrize(("value", "ok"), [(MAX_COUNTER, True), (MAX_COUNTER + 1, False)])
def test_a_suspicion_s_basis_is_bounded(value: int, ok: bool) -> None:
    notice = dataclasses.replace(SUSPECT, suspect_incarnation=value)
    wire = pb.Gossip(schema_version=SCHEMA_VERSION)
    wire.suspect.CopyFrom(pb.Gossip.FromString(encode_gossip(SUSPECT)).suspect)
    wire.suspect.suspect_incarnation = value
    assert (decode(wire.SerializeToString()) == notice) is ok


def test_the_sequencer_never_refutes_past_the_bound() -> None:
    seq = Sequencer(A, STARTED_MS)
    seq.refute(2**64)
    assert seq.incarnation == MAX_COUNTER
    encode_gossip(seq.digest(NOW, status=Status.HEALTHY, score=1.0))


def test_wire_enums_cover_the_python_enums() -> None:
    statuses = pb.NodeStatus.keys()
    assert {s.name for s in Status} == {
        n.removeprefix("NODE_STATUS_") for n in statuses if not n.endswith("UNSPECIFIED")
    }
    states = pb.MemberState.keys()
    assert {s.name for s in MemberState} == {
        n.removeprefix("MEMBER_STATE_") for n in states if not n.endswith("UNSPECIFIED")
    }


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("start_time_ms", MAX_TIME_MS, True),
        ("start_time_ms", MAX_TIME_MS + 1, False),
        ("sent_at_ms", MAX_TIME_MS, True),
        ("sent_at_ms", MAX_TIME_MS + 1, False),
        ("start_time_ms", 0, False),
    ],
)
def test_times_are_bounded(field: str, value: int, ok: bool) -> None:
    # Far in the future is FUTURE at decoding; the bound is what we would ever encode.
    message = digest(**{field: value})
    if ok:
        encode_gossip(message)
    else:
        with pytest.raises(EncodeError):
            encode_gossip(message)


@pytest.mark.parametrize(("count", "ok"), [(MAX_SUSPICIONS, True), (MAX_SUSPICIONS + 1, False)])
def test_suspicions_per_member_are_bounded(count: int, ok: bool) -> None:
    wire = _wire_snapshot(snapshot(entry(A, MemberState.ALIVE)))
    wire.members[0].suspicions.extend(_notice_about(A, f"QmObs{i}") for i in range(count))
    result = pull(wire.SerializeToString())
    if ok:
        assert isinstance(result, ViewSnapshot) and len(result.members[0].suspicions) == count
    else:
        assert reason(result) is RejectReason.INVALID_FIELD


def test_stale_suspicions_are_dropped_from_a_snapshot() -> None:
    # One signed notice must not travel from view to view forever.
    carol = entry("QmCarol", MemberState.SUSPECT)
    fresh = carol.suspicions[0]
    old_notice = dataclasses.replace(fresh.notice, observer_id="QmOld", sent_at_ms=NOW_MS - 61_000)
    old = SignedNotice(old_notice, sealed(old_notice))
    view = snapshot(dataclasses.replace(carol, suspicions=(fresh, old)))
    decoded = pull(encode_snapshot(view))
    assert isinstance(decoded, ViewSnapshot)
    assert decoded.members[0].suspicions == (fresh,)


def test_our_digests_say_our_wire_level_and_older_readers_get_names() -> None:
    from mesh.wire_level import WIRE_LEVEL

    me = Sequencer(A, STARTED_MS)
    ours = me.digest(NOW, status=Status.HEALTHY, score=1.0, components={"p2p": 1.0, "dht": 0.5})
    assert ours.wire_level == WIRE_LEVEL == 2
    for compact in (True, False):
        data = encode_gossip(ours, compact=compact)
        assert decode(data) == ours
        wire = pb.Gossip.FromString(data).digest
        assert wire.wire_level == 2
        named = dict(wire.components)
        assert named == ({} if compact else {"p2p": 1.0, "dht": 0.5})
