"""Health gossip on the wire: the topic, and the protobuf form of one message.

Everything a peer sends passes through ``decode_gossip`` (GossipSub topic
``CHORUS/health-scores/v1``) or ``decode_snapshot`` (the pull protocol, ``mesh.snapshot_codec``)
before it reaches the cluster view. Both take hostile bytes and never raise: they return the
message (``mesh.messages``), or a ``Rejection`` whose ``reason`` is a small enum the adapter
counts per reason (``mesh.rejection``).

Checks, in order (first failure wins; the limits and shape checks are ``mesh.wire_bounds``):

1. size: more than ``MAX_GOSSIP_BYTES`` (4 KiB) or ``MAX_SNAPSHOT_BYTES`` (256 KiB) is
   OVERSIZED, before any parsing;
2. protobuf parse: MALFORMED (also a Gossip with no known body);
3. ``schema_version`` other than ``SCHEMA_VERSION``: UNSUPPORTED_VERSION;
4. the statement's author (``node_id``, ``observer_id``, ``responder_id``) must be the
   verified signer libp2p hands us (the GossipSub message's signer, or the stream's remote
   peer): SIGNER_MISMATCH;
5. field shapes and ranges (peer ID characters, scores in [0, 1], addresses, counts;
   incarnations and seqs at most ``MAX_COUNTER``, times at most ``MAX_TIME_MS``, so that no
   number a peer sends can overflow anything we compute or encode from it): INVALID_FIELD;
6. time: ``sent_at`` (and ``start_time``) more than ``max_clock_skew`` ahead of ``now`` is
   FUTURE; a gossip message sent more than ``max_message_age`` ago is STALE.

Encoding validates the same shapes and limits, so we never publish what peers would reject.
"""

from __future__ import annotations

from typing import Any

from mesh import component_table
from mesh import digest_pb2 as _pb
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.errors import MeshError
from mesh.messages import Gossip, HealthDigest, LeaveNotice, SuspectNotice
from mesh.model import Status
from mesh.rejection import Rejection, RejectReason
from mesh.wire_bounds import MAX_COMPONENTS, MAX_GOSSIP_BYTES, check_gossip, check_time

__all__ = [
    "SCHEMA_VERSION",
    "TOPIC",
    "EncodeError",
    "decode_gossip",
    "encode_gossip",
    "unchecked_gossip",
]

TOPIC = "CHORUS/health-scores/v1"
SCHEMA_VERSION = 1


class EncodeError(MeshError):
    """A message of ours would be invalid or too large on the wire."""


_STATUS_TO_WIRE = {status: _pb.NodeStatus.Value(f"NODE_STATUS_{status.name}") for status in Status}
_STATUS_FROM_WIRE = {number: status for status, number in _STATUS_TO_WIRE.items()}


def _fill_digest(out: Any, digest: HealthDigest, compact: bool) -> None:
    out.node_id = digest.node_id
    out.start_time_ms = digest.start_time_ms
    out.incarnation = digest.incarnation
    out.seq = digest.seq
    out.status = _STATUS_TO_WIRE[digest.status]
    out.score = digest.score
    if compact:
        whole, indexed, named = component_table.split(digest.components)
    else:  # for members of an older build (mesh/wire_level.py)
        whole, indexed, named = 0, {}, dict(digest.components)
    out.whole_components = whole
    for index, score in indexed.items():
        out.indexed_components[index] = score
    for name, score in named.items():
        out.components[name] = score
    out.sent_at_ms = digest.sent_at_ms
    out.version = digest.version
    out.http_addr = digest.http_addr
    out.p2p_addrs.extend(digest.p2p_addrs)
    out.local_health = digest.local_health
    out.wire_level = digest.wire_level
    if digest.certificate is not None:
        out.certificate.expires_at_ms = digest.certificate.expires_at_ms
        out.certificate.signature = digest.certificate.signature


def encode_gossip(message: Gossip, *, compact: bool = True) -> bytes:
    """The wire form of one of our statements; ``EncodeError`` if invalid or over 4 KiB.
    ``compact``: a digest's well-known components as numbers, for readers of wire level 2
    or more (mesh/wire_level.py); else every component by name."""
    problem = check_gossip(message)
    if problem is not None:
        raise EncodeError(f"refusing to encode {type(message).__name__}: {problem}")
    data = unchecked_gossip(message, compact=compact)
    if len(data) > MAX_GOSSIP_BYTES:
        raise EncodeError(f"gossip message is {len(data)} bytes, over {MAX_GOSSIP_BYTES}")
    return data


def unchecked_gossip(
    message: Gossip, *, schema_version: int = SCHEMA_VERSION, compact: bool = True
) -> bytes:
    """The wire form of ``message`` without ``encode_gossip``'s checks, for tools that must
    write what a node would refuse to send (``devnet.forge``): any value the protobuf field
    holds, no size limit. Beyond the field's type protobuf itself raises ValueError."""
    wire = _pb.Gossip(schema_version=schema_version)
    if isinstance(message, HealthDigest):
        _fill_digest(wire.digest, message, compact)
    elif isinstance(message, SuspectNotice):
        wire.suspect.observer_id = message.observer_id
        wire.suspect.suspect_id = message.suspect_id
        wire.suspect.suspect_start_time_ms = message.suspect_start_time_ms
        wire.suspect.suspect_incarnation = message.suspect_incarnation
        wire.suspect.suspect_seq = message.suspect_seq
        wire.suspect.sent_at_ms = message.sent_at_ms
        wire.suspect.refused = message.refused
    elif isinstance(message, LeaveNotice):
        wire.leave.node_id = message.node_id
        wire.leave.start_time_ms = message.start_time_ms
        wire.leave.incarnation = message.incarnation
        wire.leave.seq = message.seq
        wire.leave.sent_at_ms = message.sent_at_ms
    else:
        raise TypeError(f"not a gossip message: {type(message).__name__}")
    data: bytes = wire.SerializeToString(deterministic=True)
    return data


def decode_gossip(
    data: bytes,
    signer: str,
    now: float,
    *,
    config: ClusterConfig | None = None,
    check_age: bool = True,
) -> Gossip | Rejection:
    """Parse and validate one GossipSub message signed by ``signer``, received at ``now``
    (Unix seconds). ``check_age`` off: a statement carried in a snapshot. Never raises."""
    limits = config if config is not None else ClusterConfig()
    if not isinstance(data, bytes | bytearray | memoryview):
        return Rejection(RejectReason.MALFORMED, f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_GOSSIP_BYTES:
        return Rejection(RejectReason.OVERSIZED, f"{len(data)} bytes > {MAX_GOSSIP_BYTES}")
    try:
        wire = _pb.Gossip.FromString(bytes(data))
        body = wire.WhichOneof("body")
    except Exception as exc:  # hostile bytes: any parse failure is the sender's fault
        return Rejection(RejectReason.MALFORMED, f"not a Gossip message: {exc}")
    if wire.schema_version != SCHEMA_VERSION:
        return Rejection(RejectReason.UNSUPPORTED_VERSION, f"schema_version {wire.schema_version}")
    message: Gossip
    if body == "digest":
        digest = _digest_from_wire(wire.digest)
        if isinstance(digest, str):
            # The signer check comes first for every other body; keep that order here.
            if str(wire.digest.node_id) != signer:
                return Rejection(RejectReason.SIGNER_MISMATCH, f"digest signed by {signer!r}")
            return Rejection(RejectReason.INVALID_FIELD, digest)
        message = digest
        author = message.node_id
    elif body == "suspect":
        message = SuspectNotice(
            observer_id=str(wire.suspect.observer_id),
            suspect_id=str(wire.suspect.suspect_id),
            suspect_start_time_ms=int(wire.suspect.suspect_start_time_ms),
            suspect_incarnation=int(wire.suspect.suspect_incarnation),
            suspect_seq=int(wire.suspect.suspect_seq),
            sent_at_ms=int(wire.suspect.sent_at_ms),
            refused=bool(wire.suspect.refused),
        )
        author = message.observer_id
    elif body == "leave":
        message = LeaveNotice(
            node_id=str(wire.leave.node_id),
            start_time_ms=int(wire.leave.start_time_ms),
            incarnation=int(wire.leave.incarnation),
            seq=int(wire.leave.seq),
            sent_at_ms=int(wire.leave.sent_at_ms),
        )
        author = message.node_id
    else:
        return Rejection(RejectReason.MALFORMED, "no known body")
    if author != signer:
        return Rejection(RejectReason.SIGNER_MISMATCH, f"{body} by {author!r} signed by {signer!r}")
    problem = check_gossip(message)
    if problem is not None:
        return Rejection(RejectReason.INVALID_FIELD, problem)
    return check_time(message, now, limits, check_age=check_age) or message


def _digest_from_wire(wire: Any) -> HealthDigest | str:
    """The digest, or why it cannot be one (an unknown status number: proto3 enums are
    open, so the parser keeps numbers we have no name for)."""
    status = _STATUS_FROM_WIRE.get(int(wire.status))
    if status is None:
        return f"status {int(wire.status)}"
    if len(wire.indexed_components) > MAX_COMPONENTS:
        return f"{len(wire.indexed_components)} indexed components > {MAX_COMPONENTS}"
    components = component_table.join(
        int(wire.whole_components),
        {int(index): float(score) for index, score in wire.indexed_components.items()},
        {str(name): float(score) for name, score in wire.components.items()},
    )
    if isinstance(components, str):
        return components
    return HealthDigest(
        node_id=str(wire.node_id),
        start_time_ms=int(wire.start_time_ms),
        incarnation=int(wire.incarnation),
        seq=int(wire.seq),
        status=status,
        score=float(wire.score),
        components=components,
        sent_at_ms=int(wire.sent_at_ms),
        version=str(wire.version),
        http_addr=str(wire.http_addr),
        p2p_addrs=tuple(str(addr) for addr in wire.p2p_addrs),
        local_health=int(wire.local_health),
        wire_level=int(wire.wire_level),
        certificate=(
            MemberCertificate(
                peer_id=str(wire.node_id),
                expires_at_ms=int(wire.certificate.expires_at_ms),
                signature=bytes(wire.certificate.signature),
            )
            if wire.HasField("certificate")
            else None
        ),
    )
