"""The pull protocol's wire form: a view as the signed statements it holds.

Snapshots carry statements, not claims: every member entry is the member's own signed
digest (and leave), and every suspicion an observer's signed notice, each the GossipSub
message exactly as its author signed it (``mesh.signed``). ``decode_snapshot`` verifies each
one with the verifier it is given and decodes it as if it had arrived on the topic
(``mesh.digest.decode_gossip``), without the age check: a dead member's last digest is old by
nature. An entry whose statements do not verify or do not fit together makes the whole
snapshot INVALID_FIELD (or FORGED for a bad signature): an honest responder never sends one.
The snapshot's own size, parse, schema-version and responder checks are those listed in
``mesh.digest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from mesh import digest_pb2 as _pb
from mesh.cluster_config import ClusterConfig
from mesh.digest import SCHEMA_VERSION, EncodeError, decode_gossip
from mesh.messages import (
    Gossip,
    HealthDigest,
    LeaveNotice,
    MemberEntry,
    MemberState,
    SignedNotice,
    SuspectNotice,
    ViewSnapshot,
)
from mesh.rejection import Rejection, RejectReason
from mesh.signed import Envelope, EnvelopeVerifier
from mesh.view_summary import SUMMARY_BYTES
from mesh.wire_bounds import (
    MAX_ENVELOPE_BYTES,
    MAX_PEER_ID,
    MAX_SNAPSHOT_BYTES,
    MAX_SUSPICIONS,
    is_peer_id_shape,
    to_ms,
)

__all__ = [
    "MAX_PAGE_MEMBERS",
    "MAX_PULL_REQUEST",
    "PULL_REQUEST",
    "PullAsk",
    "decode_snapshot",
    "encode_snapshot",
    "parse_pull_request",
    "pull_request",
]

# A request is one version byte: 1 asks for the first page (servers that predate paging
# answer it with as much of the view as fits), 2 for the page after the member id that
# follows it, and 3 (anti-entropy) for the page after that id of the members in the
# buckets where the view differs from the summary that comes first
# (``mesh.view_summary``). Anything else is refused.
PULL_REQUEST = b"\x01"
_PAGE_REQUEST = b"\x02"
_SYNC_REQUEST = b"\x03"
# Bytes a server reads of a request before giving up.
MAX_PULL_REQUEST = 1 + SUMMARY_BYTES + MAX_PEER_ID
# More members than any page can hold (an entry is a signed statement: well over 128
# bytes), so a server builds no more of its view than one page can carry.
MAX_PAGE_MEMBERS = MAX_SNAPSHOT_BYTES // 128

_STATE_TO_WIRE = {
    state: _pb.MemberState.Value(f"MEMBER_STATE_{state.name}") for state in MemberState
}
_STATE_FROM_WIRE = {number: state for state, number in _STATE_TO_WIRE.items()}
# Worst-case framing of one repeated MemberEntry: a 1-byte tag and a 3-byte length varint
# (enough for 2 MiB).
_ENTRY_FRAMING = 4


def encode_snapshot(snapshot: ViewSnapshot, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """One page of a view, at most ``max_bytes``.

    Only what can be verified goes out: an entry without its digest's envelope is left out,
    and so are the suspicions and leave we hold no envelope of. Members go out in the order
    of their ids, as many as fit; when more follow (here, or past the members that
    ``Snapshots.build`` put in this page), ``next_after`` names the last id the page covers,
    the cursor of the next page's request, and ``truncated`` is set for clients that do
    not page. Never raises for an entry's sake: the server of a pull must always be able
    to answer.
    """
    if not is_peer_id_shape(snapshot.responder_id):
        raise EncodeError(f"invalid responder id {snapshot.responder_id!r}")
    head = _pb.ViewSnapshot(
        schema_version=SCHEMA_VERSION,
        responder_id=snapshot.responder_id,
        sent_at_ms=snapshot.sent_at_ms,
        truncated=True,  # counted as if set: costs 2 bytes
    )
    members = sorted(snapshot.members, key=lambda e: e.digest.node_id)
    # Room for the cursor: a tag, a length varint (two bytes past 127) and the longest id.
    size = head.ByteSize() + 3 + max((len(e.digest.node_id) for e in members), default=0)
    kept: list[Any] = []
    covered = ""  # the last id this page has dealt with, kept or left out
    next_after = snapshot.next_after
    truncated = snapshot.truncated
    for entry in members:
        if not entry.statement:
            covered = entry.digest.node_id
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
            if kept:  # the rest go in the next page
                next_after = covered
                break
            covered = entry.digest.node_id  # alone too large for any page: left out
            continue
        size += cost
        kept.append(wire)
        covered = entry.digest.node_id
    head.truncated = truncated or bool(next_after)
    head.next_after = next_after
    head.members.extend(kept)
    data: bytes = head.SerializeToString(deterministic=True)
    return data


@dataclass(frozen=True, slots=True)
class PullAsk:
    """What a pull request asks for: the page after member id ``after`` ("" the first),
    of the whole view, or with ``summary`` only of the buckets that differ from it."""

    after: str = ""
    summary: bytes | None = None


def pull_request(after: str = "", summary: bytes | None = None) -> bytes:
    """The request for the page after member id ``after`` ("" for the first), of the
    members that differ from ``summary`` if one is given."""
    if summary is not None:
        return _SYNC_REQUEST + summary + after.encode()
    return _PAGE_REQUEST + after.encode() if after else PULL_REQUEST


def parse_pull_request(data: bytes | None) -> PullAsk | None:
    """What a request asks for, or None if it is not one."""
    if data == PULL_REQUEST:
        return PullAsk()
    summary: bytes | None = None
    if data and data.startswith(_SYNC_REQUEST) and len(data) >= 1 + SUMMARY_BYTES:
        summary, rest = data[1 : 1 + SUMMARY_BYTES], data[1 + SUMMARY_BYTES :]
    elif data and data.startswith(_PAGE_REQUEST):
        rest = data[1:]
    else:
        return None
    try:
        after = rest.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not (is_peer_id_shape(after) or (summary is not None and not after)):
        return None
    return PullAsk(after, summary)


def decode_snapshot(
    data: bytes,
    responder: str,
    now: float,
    *,
    verify: EnvelopeVerifier,
    config: ClusterConfig | None = None,
    after: str = "",
) -> ViewSnapshot | Rejection:
    """Parse and validate a pull response from ``responder`` (the stream's verified remote
    peer), the page after the member id ``after`` ("" for the first), verifying every
    carried statement with ``verify``. Every member must sort after ``after``, and a
    ``next_after`` after them all, so that a responder cannot have us page for ever.
    Entries are not checked for age: a dead member's last digest is old by nature. Never
    raises."""
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
    if not 0 < int(wire.sent_at_ms) <= to_ms(now + limits.max_clock_skew):
        return Rejection(RejectReason.FUTURE, f"snapshot sent_at_ms {wire.sent_at_ms}")
    if len(wire.members) > limits.max_members:
        return Rejection(
            RejectReason.INVALID_FIELD, f"{len(wire.members)} members > {limits.max_members}"
        )
    next_after = str(wire.next_after)
    if next_after and not (is_peer_id_shape(next_after) and next_after > after):
        return Rejection(RejectReason.INVALID_FIELD, f"next_after {next_after[:MAX_PEER_ID]!r}")
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
        if not after < entry.digest.node_id <= (next_after or entry.digest.node_id):
            return Rejection(
                RejectReason.INVALID_FIELD, f"member {entry.digest.node_id!r} outside the page"
            )
        seen.add(entry.digest.node_id)
        entries.append(entry)
    return ViewSnapshot(
        responder_id=str(wire.responder_id),
        sent_at_ms=int(wire.sent_at_ms),
        members=tuple(entries),
        truncated=bool(wire.truncated),
        next_after=next_after,
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
