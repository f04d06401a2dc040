"""Health gossip on the wire: typed messages, their protobuf encoding, and validation.

Everything a peer sends passes through ``decode_gossip`` (GossipSub topic
``CHORUS/health-scores/v1``) or ``decode_snapshot`` (the pull protocol) before it reaches the
cluster view. Both take hostile bytes and never raise: they return the message, or a
``Rejection`` whose ``reason`` is a small enum the adapter counts per reason.

Checks, in order (first failure wins):

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

Snapshots carry statements, not claims: every member entry is the member's own signed
digest (and leave), and every suspicion an observer's signed notice, each the GossipSub
message exactly as its author signed it (``mesh.signed``). ``decode_snapshot`` verifies each
one with the verifier it is given and decodes it as if it had arrived on the topic, without
the age check: a dead member's last digest is old by nature. An entry whose statements do
not verify or do not fit together makes the whole snapshot INVALID_FIELD (or FORGED for a bad
signature): an honest responder never sends one.

REPLAYED (a statement not newer than the last accepted one), NOT_MEMBER, NOT_ADMITTED,
VIEW_FULL and JOIN_RATE need state, so the cluster view or the gossip adapter decides them,
and FLOODED (a signer over its message rate) is decided by the gossip adapter; all are in
this enum so that one counter covers all.

Encoding validates the same shapes and limits, so we never publish what peers would reject.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, cast

from mesh import digest_pb2 as _pb
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.errors import MeshError
from mesh.model import Status
from mesh.signed import Envelope, EnvelopeVerifier

__all__ = [
    "MAX_COUNTER",
    "MAX_GOSSIP_BYTES",
    "MAX_SNAPSHOT_BYTES",
    "MAX_SUSPICIONS",
    "MAX_TIME_MS",
    "SCHEMA_VERSION",
    "TOPIC",
    "EncodeError",
    "Gossip",
    "HealthDigest",
    "LeaveNotice",
    "MemberEntry",
    "MemberState",
    "RejectReason",
    "Rejection",
    "Sequencer",
    "SignedNotice",
    "SuspectNotice",
    "Version",
    "ViewSnapshot",
    "decode_gossip",
    "decode_snapshot",
    "encode_gossip",
    "encode_snapshot",
    "unchecked_gossip",
]

TOPIC = "CHORUS/health-scores/v1"
SCHEMA_VERSION = 1
MAX_GOSSIP_BYTES = 4 * 1024  # one Gossip message; a typical digest is 200-500 bytes
# One carried statement: a Gossip plus libp2p's envelope (ids, seqno, topic, signature, key).
MAX_ENVELOPE_BYTES = MAX_GOSSIP_BYTES + 512
MAX_SNAPSHOT_BYTES = 256 * 1024  # one ViewSnapshot: some 500 typical members

# Field limits. The byte limits above are the real bound; these keep each field sane.
MAX_PEER_ID = 128  # base58 Ed25519 IDs are 52 characters, RSA ones 46
MAX_COMPONENTS = 32
MAX_COMPONENT_NAME = 64
MAX_VERSION = 64
MAX_ADDR = 256
MAX_P2P_ADDRS = 16
MAX_SUSPICIONS = 64  # signed suspect notices per member entry of a snapshot
# Counters (incarnation, seq) and Unix-millisecond times: 2**53 - 1 is what a JSON reader of
# /health/cluster can hold exactly, and far beyond any honest value (a seq bumped ten times a
# second lasts 28 million years). A refutation adds one to an incarnation: bounding what we
# accept bounds what we can be made to encode.
MAX_COUNTER = 2**53 - 1
MAX_TIME_MS = 2**53 - 1
MAX_CERT_SIGNATURE = 64

# libp2p peer IDs are base58btc multihashes (or base32 CIDs); only the shape is checked here,
# since the signer comparison already ties an ID to a key.
_PEER_ID = re.compile(r"[A-Za-z0-9]+")
_COMPONENT = re.compile(r"[A-Za-z0-9_.:/-]+")


class EncodeError(MeshError):
    """A message of ours would be invalid or too large on the wire."""


class MemberState(StrEnum):
    """What the cluster thinks of a member (SWIM with memberlist's ``left``)."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


class RejectReason(StrEnum):
    MALFORMED = "malformed"  # not a parseable message of ours
    OVERSIZED = "oversized"  # over the byte limit
    UNSUPPORTED_VERSION = "unsupported_version"  # schema_version is not ours
    SIGNER_MISMATCH = "signer_mismatch"  # the author is not the signer
    INVALID_FIELD = "invalid_field"  # a field out of shape or range
    FUTURE = "future"  # dated beyond our clock plus the allowed skew
    STALE = "stale"  # sent longer ago than max_message_age
    FORGED = "forged"  # a carried statement whose signature does not verify
    REPLAYED = "replayed"  # not newer than what the view already accepted
    FLOODED = "flooded"  # its signer is over its rate (the gossip adapter's limit)
    NOT_MEMBER = "not_member"  # a notice from a peer that is no alive member of our view
    NOT_ADMITTED = "not_admitted"  # the admission policy does not admit its author
    VIEW_FULL = "view_full"  # a new member while the view holds max_members
    JOIN_RATE = "join_rate"  # a new member beyond the rate at which the view takes them


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


class Version(NamedTuple):
    """The order of a node's own statements: compare as a tuple (life, refutations, count)."""

    start_time_ms: int
    incarnation: int
    seq: int


@dataclass(frozen=True, slots=True)
class HealthDigest:
    node_id: str
    start_time_ms: int
    incarnation: int = 0
    seq: int = 0
    status: Status = Status.HEALTHY
    score: float = 1.0
    components: Mapping[str, float] = field(default_factory=dict)
    sent_at_ms: int = 0
    version: str = ""
    http_addr: str = ""
    p2p_addrs: tuple[str, ...] = ()
    certificate: MemberCertificate | None = None

    @property
    def key(self) -> Version:
        return Version(self.start_time_ms, self.incarnation, self.seq)


@dataclass(frozen=True, slots=True)
class SuspectNotice:
    observer_id: str
    suspect_id: str
    # The newest statement of the suspect the observer had accepted: the suspicion's basis.
    suspect_start_time_ms: int
    suspect_incarnation: int
    suspect_seq: int
    sent_at_ms: int = 0

    @property
    def basis(self) -> Version:
        return Version(self.suspect_start_time_ms, self.suspect_incarnation, self.suspect_seq)


@dataclass(frozen=True, slots=True)
class LeaveNotice:
    node_id: str
    start_time_ms: int
    incarnation: int
    seq: int
    sent_at_ms: int = 0

    @property
    def key(self) -> Version:
        return Version(self.start_time_ms, self.incarnation, self.seq)


Gossip = HealthDigest | SuspectNotice | LeaveNotice


@dataclass(frozen=True, slots=True)
class SignedNotice:
    """An observer's suspicion with the envelope its observer signed."""

    notice: SuspectNotice
    statement: bytes


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """One member of a snapshot: its own signed statements and others' signed suspicions.

    ``statement`` and ``leave_statement`` are the envelopes (``mesh.signed``) that carried
    ``digest`` and ``leave``; empty in an entry we build ourselves for a member whose
    envelope we do not hold, which ``encode_snapshot`` then leaves out."""

    digest: HealthDigest
    state: MemberState
    statement: bytes = b""
    leave: LeaveNotice | None = None
    leave_statement: bytes = b""
    suspicions: tuple[SignedNotice, ...] = ()

    @property
    def key(self) -> Version:
        """The triple the state is at: the leave's for a member that left."""
        return self.leave.key if self.leave is not None else self.digest.key

    @property
    def suspected_by(self) -> tuple[str, ...]:
        return tuple(signed.notice.observer_id for signed in self.suspicions)


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    responder_id: str
    sent_at_ms: int
    members: tuple[MemberEntry, ...]
    truncated: bool = False


# --- encoding ---------------------------------------------------------------------------

_STATUS_TO_WIRE = {status: _pb.NodeStatus.Value(f"NODE_STATUS_{status.name}") for status in Status}
_STATUS_FROM_WIRE = {number: status for status, number in _STATUS_TO_WIRE.items()}
_STATE_TO_WIRE = {
    state: _pb.MemberState.Value(f"MEMBER_STATE_{state.name}") for state in MemberState
}
_STATE_FROM_WIRE = {number: state for state, number in _STATE_TO_WIRE.items()}
# Worst-case framing of one repeated MemberEntry: a 1-byte tag and a 3-byte length varint
# (enough for 2 MiB).
_ENTRY_FRAMING = 4


def _fill_digest(out: Any, digest: HealthDigest) -> None:
    out.node_id = digest.node_id
    out.start_time_ms = digest.start_time_ms
    out.incarnation = digest.incarnation
    out.seq = digest.seq
    out.status = _STATUS_TO_WIRE[digest.status]
    out.score = digest.score
    for name, score in digest.components.items():
        out.components[name] = score
    out.sent_at_ms = digest.sent_at_ms
    out.version = digest.version
    out.http_addr = digest.http_addr
    out.p2p_addrs.extend(digest.p2p_addrs)
    if digest.certificate is not None:
        out.certificate.expires_at_ms = digest.certificate.expires_at_ms
        out.certificate.signature = digest.certificate.signature


def encode_gossip(message: Gossip) -> bytes:
    """The wire form of one of our statements; ``EncodeError`` if invalid or over 4 KiB."""
    problem = _check_gossip(message)
    if problem is not None:
        raise EncodeError(f"refusing to encode {type(message).__name__}: {problem}")
    data = unchecked_gossip(message)
    if len(data) > MAX_GOSSIP_BYTES:
        raise EncodeError(f"gossip message is {len(data)} bytes, over {MAX_GOSSIP_BYTES}")
    return data


def unchecked_gossip(message: Gossip, *, schema_version: int = SCHEMA_VERSION) -> bytes:
    """The wire form of ``message`` without ``encode_gossip``'s checks, for tools that must
    write what a node would refuse to send (``devnet.forge``): any value the protobuf field
    holds, no size limit. Beyond the field's type protobuf itself raises ValueError."""
    wire = _pb.Gossip(schema_version=schema_version)
    if isinstance(message, HealthDigest):
        _fill_digest(wire.digest, message)
    elif isinstance(message, SuspectNotice):
        wire.suspect.observer_id = message.observer_id
        wire.suspect.suspect_id = message.suspect_id
        wire.suspect.suspect_start_time_ms = message.suspect_start_time_ms
        wire.suspect.suspect_incarnation = message.suspect_incarnation
        wire.suspect.suspect_seq = message.suspect_seq
        wire.suspect.sent_at_ms = message.sent_at_ms
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


def encode_snapshot(snapshot: ViewSnapshot, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """The wire form of a view, at most ``max_bytes``.

    Only what can be verified goes out: an entry without its digest's envelope is left out,
    and so are the suspicions and leave we hold no envelope of. A view too large for the
    limit is cut rather than refused, so the pull protocol keeps working in a cluster that
    outgrew it: alive members are kept first, then suspect, dead and left, and
    ``truncated`` is set for the receiver to see. Never raises for an entry's sake: the
    server of a pull must always be able to answer.
    """
    if not _is_peer_id(snapshot.responder_id):
        raise EncodeError(f"invalid responder id {snapshot.responder_id!r}")
    head = _pb.ViewSnapshot(
        schema_version=SCHEMA_VERSION,
        responder_id=snapshot.responder_id,
        sent_at_ms=snapshot.sent_at_ms,
        truncated=True,  # counted as if set: costs 2 bytes
    )
    size = head.ByteSize()
    order = {state: rank for rank, state in enumerate(MemberState)}
    kept: list[Any] = []
    truncated = snapshot.truncated
    for entry in sorted(snapshot.members, key=lambda e: (order[e.state], e.digest.node_id)):
        if not entry.statement:
            continue
        # protoc's stub types an enum field as the enum's class, its numbers as int.
        wire = _pb.MemberEntry(state=cast("_pb.MemberState", _STATE_TO_WIRE[entry.state]))
        wire.digest_statement = entry.statement
        if entry.leave is not None and entry.leave_statement:
            wire.leave_statement = entry.leave_statement
        signed = [s.statement for s in entry.suspicions if s.statement][:MAX_SUSPICIONS]
        wire.suspicions.extend(signed)
        cost = wire.ByteSize() + _ENTRY_FRAMING
        if size + cost > max_bytes:
            truncated = True
            continue
        size += cost
        kept.append(wire)
    head.truncated = truncated
    head.members.extend(kept)
    data: bytes = head.SerializeToString(deterministic=True)
    return data


# --- decoding ---------------------------------------------------------------------------


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
    problem = _check_gossip(message)
    if problem is not None:
        return Rejection(RejectReason.INVALID_FIELD, problem)
    return _check_time(message, now, limits, check_age=check_age) or message


def decode_snapshot(
    data: bytes,
    responder: str,
    now: float,
    *,
    verify: EnvelopeVerifier,
    config: ClusterConfig | None = None,
) -> ViewSnapshot | Rejection:
    """Parse and validate a pull response from ``responder`` (the stream's verified remote
    peer), verifying every carried statement with ``verify``. Entries are not checked for
    age: a dead member's last digest is old by nature. Never raises."""
    limits = config if config is not None else ClusterConfig()
    if not isinstance(data, bytes | bytearray | memoryview):
        return Rejection(RejectReason.MALFORMED, f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_SNAPSHOT_BYTES:
        return Rejection(RejectReason.OVERSIZED, f"{len(data)} bytes > {MAX_SNAPSHOT_BYTES}")
    try:
        wire = _pb.ViewSnapshot.FromString(bytes(data))
    except Exception as exc:
        return Rejection(RejectReason.MALFORMED, f"not a ViewSnapshot: {exc}")
    if wire.schema_version != SCHEMA_VERSION:
        return Rejection(RejectReason.UNSUPPORTED_VERSION, f"schema_version {wire.schema_version}")
    if wire.responder_id != responder:
        return Rejection(
            RejectReason.SIGNER_MISMATCH,
            f"snapshot by {wire.responder_id!r} from {responder!r}",
        )
    if not 0 < int(wire.sent_at_ms) <= _ms(now + limits.max_clock_skew):
        return Rejection(RejectReason.FUTURE, f"snapshot sent_at_ms {wire.sent_at_ms}")
    if len(wire.members) > limits.max_members:
        return Rejection(
            RejectReason.INVALID_FIELD, f"{len(wire.members)} members > {limits.max_members}"
        )
    entries: list[MemberEntry] = []
    seen: set[str] = set()
    for item in wire.members:
        entry = _entry_from_wire(item, verify, now, limits)
        if isinstance(entry, Rejection):
            return entry
        if entry.digest.node_id in seen:
            return Rejection(
                RejectReason.INVALID_FIELD, f"member {entry.digest.node_id!r} listed twice"
            )
        seen.add(entry.digest.node_id)
        entries.append(entry)
    return ViewSnapshot(
        responder_id=str(wire.responder_id),
        sent_at_ms=int(wire.sent_at_ms),
        members=tuple(entries),
        truncated=bool(wire.truncated),
    )


def _entry_from_wire(
    item: Any, verify: EnvelopeVerifier, now: float, limits: ClusterConfig
) -> MemberEntry | Rejection:
    state = _STATE_FROM_WIRE.get(int(item.state))
    if state is None:
        return Rejection(RejectReason.INVALID_FIELD, f"member state {item.state}")
    if len(item.suspicions) > MAX_SUSPICIONS:
        return Rejection(RejectReason.INVALID_FIELD, f"{len(item.suspicions)} suspicions")
    digest = _open_statement(bytes(item.digest_statement), verify, now, limits)
    if isinstance(digest, Rejection):
        return digest
    if not isinstance(digest, HealthDigest):
        return Rejection(RejectReason.INVALID_FIELD, "digest_statement is not a digest")
    member = digest.node_id
    leave: LeaveNotice | None = None
    if item.leave_statement:
        opened = _open_statement(bytes(item.leave_statement), verify, now, limits)
        if isinstance(opened, Rejection):
            return opened
        if not isinstance(opened, LeaveNotice) or opened.node_id != member:
            return Rejection(RejectReason.INVALID_FIELD, f"leave_statement of {member!r}")
        if opened.key <= digest.key:
            return Rejection(RejectReason.INVALID_FIELD, f"leave of {member!r} before its digest")
        leave = opened
    suspicions: list[SignedNotice] = []
    observers: set[str] = set()
    for raw in item.suspicions:
        # A notice is a judgement of its moment: past max_message_age it is dropped, as on
        # the topic, so that one signed notice cannot be carried from view to view forever.
        notice = _open_statement(bytes(raw), verify, now, limits, check_age=True)
        if isinstance(notice, Rejection) and notice.reason is RejectReason.STALE:
            continue
        if isinstance(notice, Rejection):
            return notice
        if not isinstance(notice, SuspectNotice) or notice.suspect_id != member:
            return Rejection(RejectReason.INVALID_FIELD, f"a suspicion in {member!r}'s entry")
        if notice.observer_id in observers:
            return Rejection(RejectReason.INVALID_FIELD, f"{member!r} suspected twice by one")
        observers.add(notice.observer_id)
        suspicions.append(SignedNotice(notice, bytes(raw)))
    return MemberEntry(
        digest=digest,
        state=state,
        statement=bytes(item.digest_statement),
        leave=leave,
        leave_statement=bytes(item.leave_statement) if leave is not None else b"",
        suspicions=tuple(suspicions),
    )


def _open_statement(
    raw: bytes,
    verify: EnvelopeVerifier,
    now: float,
    limits: ClusterConfig,
    *,
    check_age: bool = False,
) -> Gossip | Rejection:
    """A carried statement: its envelope verified, its Gossip decoded as if from the topic
    (the age checked only with ``check_age``)."""
    if not raw:
        return Rejection(RejectReason.INVALID_FIELD, "a member entry without its statement")
    if len(raw) > MAX_ENVELOPE_BYTES:
        return Rejection(RejectReason.OVERSIZED, f"statement of {len(raw)} bytes")
    try:
        envelope: Envelope | None = verify(raw)
    except Exception:  # a verifier must not raise; if it does, the statement is unproven
        envelope = None
    if envelope is None:
        return Rejection(RejectReason.FORGED, "a carried statement does not verify")
    return decode_gossip(envelope.data, envelope.signer, now, config=limits, check_age=check_age)


def _digest_from_wire(wire: Any) -> HealthDigest | str:
    """The digest, or why it cannot be one (an unknown status number: proto3 enums are
    open, so the parser keeps numbers we have no name for)."""
    status = _STATUS_FROM_WIRE.get(int(wire.status))
    if status is None:
        return f"status {int(wire.status)}"
    return HealthDigest(
        node_id=str(wire.node_id),
        start_time_ms=int(wire.start_time_ms),
        incarnation=int(wire.incarnation),
        seq=int(wire.seq),
        status=status,
        score=float(wire.score),
        components={str(name): float(value) for name, value in wire.components.items()},
        sent_at_ms=int(wire.sent_at_ms),
        version=str(wire.version),
        http_addr=str(wire.http_addr),
        p2p_addrs=tuple(str(addr) for addr in wire.p2p_addrs),
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


# --- validation -------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000.0)


def _is_peer_id(value: str) -> bool:
    return 0 < len(value) <= MAX_PEER_ID and _PEER_ID.fullmatch(value) is not None


def _is_text(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isprintable() and not any(c.isspace() for c in value)


def _is_fraction(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def _is_time(value: int) -> bool:
    return 0 < value <= MAX_TIME_MS


def _is_counter(value: int) -> bool:
    return 0 <= value <= MAX_COUNTER


def _check_digest(digest: HealthDigest) -> str | None:
    if not _is_peer_id(digest.node_id):
        return f"node_id {digest.node_id[:MAX_PEER_ID]!r}"
    if not isinstance(digest.status, Status):
        return f"status {digest.status!r}"
    if not _is_time(digest.start_time_ms):
        return f"start_time_ms {digest.start_time_ms}"
    if not _is_time(digest.sent_at_ms):
        return f"sent_at_ms {digest.sent_at_ms}"
    if not (_is_counter(digest.incarnation) and _is_counter(digest.seq)):
        return f"incarnation {digest.incarnation} or seq {digest.seq} out of range"
    cert = digest.certificate
    if cert is not None and (
        cert.peer_id != digest.node_id
        or not _is_time(cert.expires_at_ms)
        or len(cert.signature) != MAX_CERT_SIGNATURE
    ):
        return "certificate"
    if not _is_fraction(digest.score):
        return f"score {digest.score!r}"
    if len(digest.components) > MAX_COMPONENTS:
        return f"{len(digest.components)} components > {MAX_COMPONENTS}"
    for name, score in digest.components.items():
        if len(name) > MAX_COMPONENT_NAME or _COMPONENT.fullmatch(name) is None:
            return f"component name {name[:MAX_COMPONENT_NAME]!r}"
        if not _is_fraction(score):
            return f"component {name!r} score {score!r}"
    if not _is_text(digest.version, MAX_VERSION):
        return "version"
    if not _is_text(digest.http_addr, MAX_ADDR):
        return "http_addr"
    if len(digest.p2p_addrs) > MAX_P2P_ADDRS:
        return f"{len(digest.p2p_addrs)} p2p_addrs > {MAX_P2P_ADDRS}"
    for addr in digest.p2p_addrs:
        if not addr.startswith("/") or not _is_text(addr, MAX_ADDR):
            return f"p2p_addr {addr[:MAX_ADDR]!r}"
    return None


def _check_gossip(message: Gossip) -> str | None:
    if isinstance(message, HealthDigest):
        return _check_digest(message)
    if isinstance(message, SuspectNotice):
        if not _is_peer_id(message.observer_id):
            return "observer_id"
        if not _is_peer_id(message.suspect_id):
            return "suspect_id"
        if message.observer_id == message.suspect_id:
            return "a node cannot suspect itself"
        if not (_is_time(message.suspect_start_time_ms) and _is_time(message.sent_at_ms)):
            return "times out of range"
        if not (_is_counter(message.suspect_incarnation) and _is_counter(message.suspect_seq)):
            return "incarnation or seq out of range"
        return None
    if isinstance(message, LeaveNotice):
        if not _is_peer_id(message.node_id):
            return "node_id"
        if not (_is_time(message.start_time_ms) and _is_time(message.sent_at_ms)):
            return "times out of range"
        if not (_is_counter(message.incarnation) and _is_counter(message.seq)):
            return "incarnation or seq out of range"
        return None
    return f"not a gossip message: {type(message).__name__}"


def _check_time(
    message: Gossip, now: float, limits: ClusterConfig, *, check_age: bool
) -> Rejection | None:
    horizon = _ms(now + limits.max_clock_skew)
    if message.sent_at_ms > horizon:
        return Rejection(RejectReason.FUTURE, f"sent_at_ms {message.sent_at_ms} > {horizon}")
    started = (
        message.suspect_start_time_ms
        if isinstance(message, SuspectNotice)
        else message.start_time_ms
    )
    if started > horizon:
        return Rejection(RejectReason.FUTURE, f"start_time_ms {started} > {horizon}")
    if check_age:
        oldest = _ms(now - limits.max_message_age)
        if message.sent_at_ms < oldest:
            return Rejection(RejectReason.STALE, f"sent_at_ms {message.sent_at_ms} < {oldest}")
    return None


# --- our own statements -----------------------------------------------------------------


class Sequencer:
    """Numbers this node's own statements (pure; the publisher owns one).

    Every digest and the leave notice take the next ``seq`` of this life, so peers can order
    them and drop replays. ``refute`` raises the incarnation when the cluster view asks us
    to answer a suspicion (SWIM 4.2); the next digest carries it and must be published at
    once, without waiting for ``min_publish_interval``.
    """

    def __init__(self, node_id: str, start_time_ms: int, *, incarnation: int = 0) -> None:
        if not _is_peer_id(node_id):
            raise ValueError(f"invalid node id {node_id!r}")
        if start_time_ms <= 0:
            raise ValueError(f"start_time_ms must be positive, got {start_time_ms}")
        self.node_id = node_id
        self.start_time_ms = start_time_ms
        self.incarnation = incarnation
        self.seq = 0

    @property
    def key(self) -> Version:
        """The triple of the last statement made (seq 0: none yet)."""
        return Version(self.start_time_ms, self.incarnation, self.seq)

    def refute(self, incarnation: int) -> None:
        # Capped: our digests must stay encodable whatever a peer made the view ask for.
        self.incarnation = min(MAX_COUNTER, max(self.incarnation, incarnation))

    def digest(
        self,
        now: float,
        *,
        status: Status,
        score: float,
        components: Mapping[str, float] | None = None,
        version: str = "",
        http_addr: str = "",
        p2p_addrs: Iterable[str] = (),
        certificate: MemberCertificate | None = None,
    ) -> HealthDigest:
        self.seq += 1
        return HealthDigest(
            node_id=self.node_id,
            start_time_ms=self.start_time_ms,
            incarnation=self.incarnation,
            seq=self.seq,
            status=status,
            score=score,
            components=dict(components or {}),
            sent_at_ms=_ms(now),
            version=version,
            http_addr=http_addr,
            p2p_addrs=tuple(p2p_addrs),
            certificate=certificate,
        )

    def leave(self, now: float) -> LeaveNotice:
        self.seq += 1
        return LeaveNotice(
            node_id=self.node_id,
            start_time_ms=self.start_time_ms,
            incarnation=self.incarnation,
            seq=self.seq,
            sent_at_ms=_ms(now),
        )

    def suspect(self, suspect_id: str, basis: Version, now: float) -> SuspectNotice:
        # A statement about another node, ordered by its basis: it does not take a seq.
        return SuspectNotice(
            observer_id=self.node_id,
            suspect_id=suspect_id,
            suspect_start_time_ms=basis.start_time_ms,
            suspect_incarnation=basis.incarnation,
            suspect_seq=basis.seq,
            sent_at_ms=_ms(now),
        )
