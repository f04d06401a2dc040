"""The member table of one cluster view, and what a member's own statements do to it.

Each member has a mutable ``MemberRecord``; readers get a frozen ``Member`` copy. Every change
of state goes through ``Roster.move``, which looks the new state up in ``TRANSITIONS``
(``mesh.cluster_transitions``) and keeps the change in the member's history and the view's.
A forgotten member leaves a tombstone of its last Version (rule 1 of ``mesh.cluster_view``).

Rules of ``mesh.cluster_view`` carried out here:

4. Answer. A newer statement of the member answers every suspicion of it, since no basis
   is ahead of what we hold (rule 3). The member is ALIVE again: REFUTED if the
   incarnation rose (SWIM 4.2), DIGEST if a plain heartbeat outran the suspicion (its seq
   proves the member spoke after the observer last heard it). A digest of a newer life is
   RESTARTED: ALIVE from any state.
10. Leave. A leave notice makes the member LEFT at once, from any state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Event
from mesh.cluster_transitions import ALIVE, DEAD, SUSPECT, TRANSITIONS, Cause, Transition
from mesh.messages import HealthDigest, LeaveNotice, MemberState, Version
from mesh.model import Status
from mesh.suspicion import Suspicion

__all__ = ["Member", "MemberRecord", "Roster"]


@dataclass(frozen=True, slots=True)
class Member:
    """A read-only copy of one member's entry."""

    node_id: str
    state: MemberState
    status: Status  # what it says of itself
    score: float
    components: Mapping[str, float]
    key: Version
    start_time: float  # Unix seconds, from its digest
    last_heard: float  # when we last accepted a newer statement of it (or adopted it)
    state_since: float
    suspect_since: float | None
    suspected_by: frozenset[str]
    connected: bool  # libp2p has a connection to it
    version: str
    http_addr: str
    p2p_addrs: tuple[str, ...]
    history: tuple[Transition, ...]  # oldest first, bounded
    # We have had a digest of it from the topic, not only from a pulled snapshot (rule 2).
    firsthand: bool = True
    # What its digest says of its own local health (0: keeps time; mesh/awareness.py).
    local_health: int = 0

    @property
    def incarnation(self) -> int:
        return self.key.incarnation

    @property
    def seq(self) -> int:
        return self.key.seq

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.start_time)


@dataclass(slots=True)
class MemberRecord:
    digest: HealthDigest
    key: Version
    state: MemberState
    state_since: float
    last_heard: float
    history: deque[Transition]
    suspicion: Suspicion | None = None
    statement: bytes = b""  # the envelope of ``digest`` (mesh.signed), once we hold it
    firsthand: bool = False  # a digest of it came from the topic (rule 2)
    leave: LeaveNotice | None = None  # its leave, while LEFT
    leave_statement: bytes = b""
    # Witnesses (rule 7) the member answered in this life, and until when they are not
    # believed about it again: a pair of liars gets one kill per member per window, not one
    # per refutation. At most max_observers.
    discredited: dict[str, float] = field(default_factory=dict)
    # Responders whose pulled views listed it alive, until it counts (rule 2): at most
    # VOUCHERS - 1 (mesh.cluster_snapshot), emptied once it does.
    vouched: set[str] = field(default_factory=set)

    # What the election reads (mesh.election.Candidate), without copying the record.
    @property
    def node_id(self) -> str:
        return self.digest.node_id

    @property
    def status(self) -> Status:
        return self.digest.status

    @property
    def start_time(self) -> float:
        return self.digest.start_time_ms / 1000.0


class Roster:
    """The records of one view, the tombstones of forgotten members, the peers libp2p is
    connected to, the transition history, and our own incarnation as far as the view knows."""

    def __init__(self, self_id: str, config: ClusterConfig) -> None:
        self.self_id = self_id
        self.config = config
        self.records: dict[str, MemberRecord] = {}
        self.tombstones: dict[str, tuple[Version, float]] = {}  # peer -> (key, expires)
        self.connected: set[str] = set()
        self.incarnation = 0  # the highest incarnation of ours we know of
        self._history: deque[Transition] = deque(maxlen=config.history_size)

    def is_buried(self, peer: str, key: Version) -> bool:
        tomb = self.tombstones.get(peer)
        return tomb is not None and key <= tomb[0]

    def join(self, digest: HealthDigest, now: float, detail: str = "") -> list[Event]:
        peer = digest.node_id
        record = MemberRecord(
            digest=digest,
            key=digest.key,
            state=ALIVE,
            state_since=now,
            last_heard=now,
            history=deque(maxlen=self.config.history_per_member),
        )
        self.records[peer] = record
        if peer == self.self_id:
            self.incarnation = max(self.incarnation, digest.incarnation)
        transition = Transition(peer, now, None, ALIVE, Cause.JOINED, None, digest.status, detail)
        self._remember(record, transition)
        return [transition]

    def apply_leave(
        self,
        record: MemberRecord,
        notice: LeaveNotice,
        statement: bytes,
        now: float,
        detail: str = "",
    ) -> list[Event]:
        record.key = notice.key
        record.suspicion = None
        record.leave = notice
        record.leave_statement = statement
        return self.move(record, notice.node_id, Cause.LEAVE, now, detail)

    def accept_digest(
        self,
        record: MemberRecord,
        digest: HealthDigest,
        now: float,
        detail: str = "",
        *,
        statement: bytes = b"",
    ) -> list[Event]:
        """A digest newer than anything we hold of this member (rule 4)."""
        peer = digest.node_id
        restarted = digest.start_time_ms > record.key.start_time_ms
        suspicion = record.suspicion
        refuted = False
        if restarted:
            record.discredited.clear()  # a new life: its old witnesses may have been right
        if suspicion is not None:
            highest = max(basis.incarnation for basis in suspicion.bases.values())
            refuted = digest.incarnation > highest
            # No basis is ahead of what we hold (rule 3), so a newer digest answers every
            # suspicion of the member at once.
            record.suspicion = None
            if not restarted:
                self._discredit(record, suspicion, now)
        old_status = record.digest.status
        record.digest = digest
        record.key = digest.key
        record.statement = statement
        record.leave = None
        record.leave_statement = b""
        record.last_heard = now
        if peer == self.self_id:
            self.incarnation = max(self.incarnation, digest.incarnation)
        if restarted:
            cause = Cause.RESTARTED
        elif refuted and record.state in (SUSPECT, DEAD):
            cause = Cause.REFUTED
        else:
            cause = Cause.DIGEST
        return self.move(record, peer, cause, now, detail, old_status=old_status)

    def _discredit(self, record: MemberRecord, suspicion: Suspicion, now: float) -> None:
        """The member spoke in the life whose dials its witnesses said were refused."""
        until = now + self.config.dead_forget_after
        for observer in suspicion.witnesses:
            record.discredited[observer] = until
        if len(record.discredited) > self.config.max_observers:
            newest = sorted(record.discredited.items(), key=lambda kv: kv[1])
            record.discredited = dict(newest[-self.config.max_observers :])

    def forget(self, peer: str, record: MemberRecord, now: float) -> list[Event]:
        events = self.move(record, peer, Cause.FORGOTTEN, now)
        del self.records[peer]
        ttl = self.config.max_message_age + self.config.max_clock_skew
        self.tombstones[peer] = (record.key, now + ttl)
        return events

    def move(
        self,
        record: MemberRecord,
        peer: str,
        cause: Cause | None,
        now: float,
        detail: str = "",
        *,
        old_status: Status | None = None,
    ) -> list[Event]:
        """Apply ``TRANSITIONS`` for ``cause`` (None: data only) and record what changed."""
        before = record.state
        after: MemberState | None = before
        if cause is not None:
            if (before, cause) not in TRANSITIONS:
                raise LookupError(f"no transition from {before} on {cause}")
            after = TRANSITIONS[(before, cause)]
        status_before = record.digest.status if old_status is None else old_status
        status_after = record.digest.status
        if after is not None and after is not before:
            record.state = after
            record.state_since = now
        changed = after is not before or status_before is not status_after
        if not changed and cause is not Cause.RESTARTED:
            return []
        transition = Transition(
            peer,
            now,
            before,
            after,
            cause if cause is not None else Cause.DIGEST,
            status_before,
            status_after if after is not None else None,
            detail,
        )
        self._remember(record, transition)
        return [transition]

    def _remember(self, record: MemberRecord, transition: Transition) -> None:
        record.history.append(transition)
        self._history.append(transition)

    def copy(self, peer: str, record: MemberRecord) -> Member:
        digest = record.digest
        suspicion = record.suspicion
        return Member(
            node_id=peer,
            state=record.state,
            status=digest.status,
            score=digest.score,
            components=MappingProxyType(dict(digest.components)),
            key=record.key,
            start_time=digest.start_time_ms / 1000.0,
            last_heard=record.last_heard,
            state_since=record.state_since,
            suspect_since=suspicion.since if suspicion is not None else None,
            suspected_by=frozenset(suspicion.bases) if suspicion is not None else frozenset(),
            connected=peer in self.connected,
            version=digest.version,
            http_addr=digest.http_addr,
            p2p_addrs=digest.p2p_addrs,
            history=tuple(record.history),
            firsthand=record.firsthand,
            local_health=digest.local_health,
        )

    def counts(self) -> dict[MemberState, int]:
        counts = dict.fromkeys(MemberState, 0)
        for record in self.records.values():
            counts[record.state] += 1
        return counts

    def live_count(self) -> int:
        """n in the timing formulas: alive and suspect members we have heard on the topic
        ourselves (rule 2), ourselves included."""
        live = sum(1 for r in self.records.values() if r.state in (ALIVE, SUSPECT) and r.firsthand)
        me = self.records.get(self.self_id)
        return live if me is not None and me.firsthand else live + 1

    def known_live_count(self) -> int:
        """Alive and suspect members whatever told us of them (a pulled view included),
        ourselves included: who could confirm a suspicion (K, ``suspicion_timeout``)."""
        live = sum(1 for r in self.records.values() if r.state in (ALIVE, SUSPECT))
        return live if self.self_id in self.records else live + 1

    def history(self, *, peer: str | None = None, limit: int | None = None) -> list[Transition]:
        """Newest first, optionally for one peer (kept even after it is forgotten)."""
        picked = [t for t in reversed(self._history) if peer is None or t.peer == peer]
        return picked if limit is None else picked[:limit]
