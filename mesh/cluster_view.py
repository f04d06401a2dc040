"""The cluster view: who is alive, suspect, dead or gone, as one node sees it.

Pure code in the manner of h11's ``_state.py``: the adapter feeds it validated messages
(``mesh.digest``) and libp2p's connection events, each with the time as a value, and gets
back plain data: ``Transition`` records and the actions ``PublishSuspect`` and
``PublishRefute``. Nothing here sleeps, sends or reads a clock.

Theory of operation
-------------------
Every node gossips a signed digest of its own health on change and every refresh interval;
these digests are our heartbeats. A peer falls under suspicion when libp2p closes our
connection to it, when our liveness pings to it go unanswered, or when its digests stop
arriving; a suspicion is gossiped so that the others can confirm it, and the suspect can
refute it by publishing a newer digest. An unrefuted suspicion becomes death after a timeout
that shrinks as independent observers confirm it (Lifeguard, Dadgar et al. 2017, IV-B) and
grows while we ourselves are starved (IV-A). This is SWIM (Das et al. 2002) with the
heartbeats of GossipSub instead of SWIM's probes.

Rules
-----
1. Order. A node's own statements (digests, its leave) are ordered by ``Version`` =
   (start_time_ms, incarnation, seq). One not newer than the last we accepted from that node
   is REPLAYED. A forgotten member leaves a tombstone of its last Version for
   ``max_message_age + max_clock_skew``, so a replay cannot bring it back either.
2. Entry. A member enters with its first digest, from the topic or carried in a pulled
   snapshot (ALIVE, cause JOINED), while the view holds fewer than ``max_members`` and the
   join gate (``mesh.view_bounds``) has a token; otherwise the digest is rejected
   (VIEW_FULL, JOIN_RATE). Members known only from snapshots do not count in n (the
   timing formulas) nor for the election until a digest of theirs reaches us on the
   topic: one responder's view of minted members must not stretch our heartbeat while
   our peers' n stays small, which would have them suspect us by silence. Notices and
   connection events about peers we have no digest of are ignored, as memberlist ignores
   "a node we've never heard of".
3. Suspicion is evidence against a Version, its basis: our own evidence (DISCONNECTED,
   PING_FAILED, SILENCE) is against the newest Version we hold, a ``SuspectNotice`` against
   the one its observer held, but never beyond what the suspect has said itself as far as we
   know (the newest Version we hold): a basis claimed further ahead could never be answered,
   and one notice would make a live member dead for good. Evidence older than what we hold
   is ignored (SWIM 4.2: "ignore old incarnations"). Only alive members count as observers
   (NOT_MEMBER otherwise: minted identities confirm nothing), each once, at most
   ``max_observers``; those after the first are confirmations.
4. Answer. A newer statement of the member answers every suspicion of it, since no basis
   is ahead of what we hold (rule 3). The member is ALIVE again: REFUTED if the
   incarnation rose (SWIM 4.2), DIGEST if a plain heartbeat outran the suspicion (its seq
   proves the member spoke after the observer last heard it). A digest of a newer life is
   RESTARTED: ALIVE from any state.
5. Self. We never suspect ourselves. A notice suspecting us (from the topic or carried in
   a snapshot) returns ``PublishRefute(incarnation + 1)``, unless we are leaving, or it is
   about an earlier life of ours or an incarnation we have already refuted. A basis beyond
   anything we said (a later life, a higher incarnation) is a lie about us: it is refuted at
   our own incarnation, so no notice can make us jump, or overflow, our incarnation.
6. Sharing. A suspicion we originate, or confirm by our own evidence, is published once as
   ``PublishSuspect``, unless the originator and K confirmations (Lifeguard's K) are known
   already: then ours would change nobody's timeout. Others' notices are not re-published:
   GossipSub already floods them.
7. Death. SUSPECT becomes DEAD once ``suspicion_timeout(n, confirmations)`` times the
   local-health multiplier has passed since the suspicion began (``mesh.cluster_config``),
   or ``refused_grace`` after our own dial to the member's address was refused (REFUSED):
   nothing listens there, a kernel's answer that no peer can forge for another, so it is
   trusted even when starved. Nobody's notice carries it: each observer dials for itself
   (the adapter dials a suspect it is not connected to), so a liar's notice buys at most
   a dial that connects.
8. Local health (Lifeguard IV-A). With health score s (0 = fine, up to awareness_max - 1),
   silence and suspicion timeouts are multiplied by s + 1. While s > 0 ("starved") our
   timing evidence (SILENCE, PING_FAILED) is not trusted: it is not published, and a
   suspicion resting on it alone never becomes DEAD. When s returns to 0 such suspicions
   restart their clock, and those never published are withdrawn (LOCAL_RECOVERY). A closed
   connection is a kernel's fact, not a timing judgement, and is trusted even when starved.
9. Stopping. Failure evidence about a member whose last digest said ``stopping`` means it
   left (STOPPED): a graceful shutdown whose leave notice was lost still shows as left.
10. Leave. A leave notice makes the member LEFT at once, from any state.
11. Forgetting. DEAD members are dropped after ``dead_forget_after``, LEFT ones after
    ``left_forget_after`` (FORGOTTEN).
12. Snapshots carry signed statements, not the responder's word. Each entry is the
    member's own digest (and leave), and each suspicion an observer's notice, all as their
    authors signed them (``mesh.signed``); the view applies them as if they had come from
    the topic: digests first, then leaves, then notices. A responder can thus neither forge
    nor advance what a member says of itself, nor invent observers; a stale snapshot can
    neither resurrect nor rewind a member (only newer statements count). Notices carried
    in a snapshot (older than ``max_message_age`` are dropped on decoding) make a member
    SUSPECT, never DEAD: a suspicion resting on carried notices alone has no deadline, for
    nobody re-gossips them and the suspect may never hear of them to refute. It waits for
    the member's next statement, which answers it, or for evidence of our own or a notice
    on the topic, from which its timer starts (memberlist's mergeState: "prefer to
    suspect").

The transitions are the table ``TRANSITIONS`` below; the handlers work out which cause
applies (early-return guards, one comment each) and look the new state up there.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from mesh.cluster_config import ClusterConfig, expected_confirmations
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
from mesh.view_bounds import JoinGate

__all__ = [
    "TRANSITIONS",
    "Cause",
    "ClusterHealth",
    "ClusterView",
    "Event",
    "Member",
    "MemberState",
    "Outcome",
    "PublishRefute",
    "PublishSuspect",
    "Transition",
]

ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


class Cause(StrEnum):
    JOINED = "joined"  # first digest of a peer (or first sight in a snapshot)
    DIGEST = "digest"  # a newer digest of the same life
    REFUTED = "refuted"  # a newer digest with a higher incarnation answered the suspicion
    RESTARTED = "restarted"  # a digest of a newer life (start time)
    LEAVE = "leave"  # the peer said it is leaving
    STOPPED = "stopped"  # failure evidence about a peer that said it was stopping
    DISCONNECTED = "disconnected"  # libp2p closed our last connection to it
    REFUSED = "refused"  # our dial to its advertised address was refused (rule 7)
    PING_FAILED = "ping_failed"  # a liveness ping went unanswered (adapters/pinger.py)
    SILENCE = "silence"  # no new digest for the silence timeout
    SUSPECT_NOTICE = "suspect_notice"  # another observer suspects it
    SUSPICION_TIMEOUT = "suspicion_timeout"  # suspected for the whole suspicion timeout
    LOCAL_RECOVERY = "local_recovery"  # we recovered; our starved suspicion is withdrawn
    FORGOTTEN = "forgotten"  # dead or left for long enough


# Our own evidence that depends on our timing being right (rule 8).
TIMING_EVIDENCE = frozenset({Cause.SILENCE, Cause.PING_FAILED})

# (state, cause) -> next state; None means the member is dropped from the view. A pair that
# is not listed is a cause that does not apply in that state: the handlers never look it up.
#
#   state    | DIGEST  REFUTED RESTARTED LEAVE STOPPED evidence* TIMEOUT RECOVERY FORGOTTEN
#   ---------+-----------------------------------------------------------------------------
#   alive    | alive   -       alive     left  left    suspect   -       -        -
#   suspect  | alive   alive   alive     left  -***    suspect   dead    alive    -
#   dead     | alive   alive   alive     left  -       -         -       -        (gone)
#   left     | alive   -       alive     left  -       -         -       -        (gone)
#
#   * DISCONNECTED, REFUSED, PING_FAILED, SILENCE, SUSPECT_NOTICE; on a suspect: a
#     confirmation (REFUSED also brings its death forward, rule 7).
#   *** a suspect's newer digest always answers its suspicions (no basis is ahead of what
#      we hold, rule 3), so a "stopping" digest finds it alive, never suspect.
TRANSITIONS: Mapping[tuple[MemberState, Cause], MemberState | None] = MappingProxyType(
    {
        (ALIVE, Cause.DIGEST): ALIVE,
        (ALIVE, Cause.RESTARTED): ALIVE,
        (ALIVE, Cause.LEAVE): LEFT,
        (ALIVE, Cause.STOPPED): LEFT,
        (ALIVE, Cause.DISCONNECTED): SUSPECT,
        (ALIVE, Cause.REFUSED): SUSPECT,
        (ALIVE, Cause.PING_FAILED): SUSPECT,
        (ALIVE, Cause.SILENCE): SUSPECT,
        (ALIVE, Cause.SUSPECT_NOTICE): SUSPECT,
        (SUSPECT, Cause.DIGEST): ALIVE,
        (SUSPECT, Cause.REFUTED): ALIVE,
        (SUSPECT, Cause.RESTARTED): ALIVE,
        (SUSPECT, Cause.LEAVE): LEFT,
        (SUSPECT, Cause.DISCONNECTED): SUSPECT,
        (SUSPECT, Cause.REFUSED): SUSPECT,
        (SUSPECT, Cause.PING_FAILED): SUSPECT,
        (SUSPECT, Cause.SILENCE): SUSPECT,
        (SUSPECT, Cause.SUSPECT_NOTICE): SUSPECT,
        (SUSPECT, Cause.SUSPICION_TIMEOUT): DEAD,
        (SUSPECT, Cause.LOCAL_RECOVERY): ALIVE,
        (DEAD, Cause.DIGEST): ALIVE,
        (DEAD, Cause.REFUTED): ALIVE,
        (DEAD, Cause.RESTARTED): ALIVE,
        (DEAD, Cause.LEAVE): LEFT,
        (DEAD, Cause.FORGOTTEN): None,
        (LEFT, Cause.DIGEST): ALIVE,
        (LEFT, Cause.RESTARTED): ALIVE,
        (LEFT, Cause.LEAVE): LEFT,
        (LEFT, Cause.FORGOTTEN): None,
    }
)


# --- outputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a member's state or self-reported status, kept in the history."""

    peer: str
    at: float  # the ``now`` of the event that caused it
    from_state: MemberState | None  # None: the peer was not in the view
    to_state: MemberState | None  # None: the peer was forgotten
    cause: Cause
    from_status: Status | None = None
    to_status: Status | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PublishSuspect:
    """Action: publish ``SuspectNotice`` (``Sequencer.suspect(suspect, basis, now)``)."""

    suspect: str
    basis: Version


@dataclass(frozen=True, slots=True)
class PublishRefute:
    """Action: raise our incarnation to ``incarnation`` and publish a digest at once."""

    incarnation: int


Event = Transition | PublishSuspect | PublishRefute


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input did: the events it caused, or why it was rejected."""

    events: tuple[Event, ...] = ()
    rejection: Rejection | None = None
    note: str = ""  # why an accepted input changed nothing, for debug logs
    # Parts of an accepted snapshot that were turned away (a member over the join gate, a
    # notice from a non-member, ...), each to be counted like a rejection.
    dropped: tuple[Rejection, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.rejection is None


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

    @property
    def incarnation(self) -> int:
        return self.key.incarnation

    @property
    def seq(self) -> int:
        return self.key.seq

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.start_time)


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    """The cluster as a whole, as this view sees it.

    - ``score``: mean over members that did not leave of their reported score, halved while
      suspect, 0 when dead.
    - ``status``: STARTING with no members yet, STOPPING once we left; UNHEALTHY when at
      least half the members that did not leave are dead (no majority left); DEGRADED when
      any is suspect or dead or reports itself other than healthy; HEALTHY otherwise.
    """

    status: Status
    score: float
    counts: Mapping[MemberState, int]
    message: str


# --- internal records -------------------------------------------------------------------


@dataclass(slots=True)
class _Suspicion:
    since: float
    bases: dict[str, Version]  # observer -> the Version it suspects; first is the originator
    local: set[Cause] = field(default_factory=set)  # our own evidence, if we are an observer
    quiet: bool = False  # our evidence came while starved and was not published
    # observer -> its notice as it signed it: what a snapshot of ours may carry on.
    signed: dict[str, SignedNotice] = field(default_factory=dict)
    # Observers we know of only from notices carried in pulled snapshots (rule 12).
    carried: set[str] = field(default_factory=set)
    refused_at: float | None = None  # our first refused dial-back (rule 7)

    def held(self) -> bool:
        """Resting on carried notices alone: no deadline (rule 12)."""
        return bool(self.carried) and self.carried >= self.bases.keys()

    def confirmations(self) -> int:
        return max(0, len(self.bases) - 1)


@dataclass(slots=True)
class _Record:
    digest: HealthDigest
    key: Version
    state: MemberState
    state_since: float
    last_heard: float
    history: deque[Transition]
    suspicion: _Suspicion | None = None
    statement: bytes = b""  # the envelope of ``digest`` (mesh.signed), once we hold it
    firsthand: bool = False  # a digest of it came from the topic (rule 2)
    leave: LeaveNotice | None = None  # its leave, while LEFT
    leave_statement: bytes = b""


class ClusterView:
    """One node's view of the cluster; see the module docstring for the rules."""

    def __init__(self, self_id: str, config: ClusterConfig | None = None) -> None:
        self.self_id = self_id
        self.config = config if config is not None else ClusterConfig()
        self._members: dict[str, _Record] = {}
        self._tombstones: dict[str, tuple[Version, float]] = {}  # peer -> (key, expires)
        self._connected: set[str] = set()
        self._health = 0
        self._incarnation = 0  # the highest incarnation of ours we know of
        self._history: deque[Transition] = deque(maxlen=self.config.history_size)
        self._joins = JoinGate(
            self.config.max_members, self.config.join_burst, self.config.join_rate
        )

    # --- local health (Lifeguard IV-A) ----------------------------------------------------

    @property
    def local_health(self) -> int:
        return self._health

    @property
    def starved(self) -> bool:
        return self._health > 0

    @property
    def multiplier(self) -> int:
        """memberlist's ``awareness.ScaleTimeout``: timeouts times (score + 1)."""
        return self._health + 1

    def set_local_health(self, score: int, now: float) -> list[Event]:
        """Set the local health score (0 = healthy), clamped to [0, awareness_max - 1]."""
        was_starved = self.starved
        self._health = min(max(0, score), self.config.awareness_max - 1)
        if was_starved and not self.starved:
            return self._recover(now)
        return []

    def set_starved(self, starved: bool, now: float) -> list[Event]:
        """The event-loop lag check's verdict: starved means the maximum multiplier."""
        return self.set_local_health(self.config.awareness_max - 1 if starved else 0, now)

    @property
    def local_incarnation(self) -> int:
        """Our incarnation as far as the view knows (own digests and refutations)."""
        return self._incarnation

    # --- inputs ---------------------------------------------------------------------------

    def on_gossip(self, message: Gossip, now: float, statement: bytes = b"") -> Outcome:
        """A validated message from the topic; ``statement`` is the envelope it came in
        (kept so that our snapshots can carry it on)."""
        if isinstance(message, HealthDigest):
            return self.on_digest(message, now, statement)
        if isinstance(message, SuspectNotice):
            return self.on_suspect_notice(message, now, statement)
        return self.on_leave(message, now, statement)

    def on_digest(self, digest: HealthDigest, now: float, statement: bytes = b"") -> Outcome:
        peer = digest.node_id
        record = self._members.get(peer)
        if record is None:
            # Rule 1: a replay must not bring a forgotten member back.
            if self._is_buried(peer, digest.key):
                return _replayed(f"digest {tuple(digest.key)} of forgotten {peer}")
            # Rule 2: the view's size and the rate of new members are bounded.
            if peer != self.self_id:
                refused = self._joins.admit(len(self._members), now)
                if refused is not None:
                    return Outcome(rejection=refused)
            self._tombstones.pop(peer, None)
            events = self._join(digest, now)
            self._members[peer].statement = statement
            self._members[peer].firsthand = True
            return Outcome(tuple(events))
        # Rule 1: only newer statements count.
        if digest.key <= record.key:
            return _replayed(f"digest {tuple(digest.key)} <= {tuple(record.key)} of {peer}")
        record.firsthand = True
        return Outcome(tuple(self._accept_digest(record, digest, now, statement=statement)))

    def on_leave(self, notice: LeaveNotice, now: float, statement: bytes = b"") -> Outcome:
        peer = notice.node_id
        record = self._members.get(peer)
        if record is None:
            if self._is_buried(peer, notice.key):
                return _replayed(f"leave {tuple(notice.key)} of forgotten {peer}")
            return Outcome(note=f"leave of unknown peer {peer}")
        # Rule 1: a leave older than what we hold is a replay.
        if notice.key <= record.key:
            return _replayed(f"leave {tuple(notice.key)} <= {tuple(record.key)} of {peer}")
        return Outcome(tuple(self._apply_leave(record, notice, statement, now)))

    def on_suspect_notice(
        self,
        notice: SuspectNotice,
        now: float,
        statement: bytes = b"",
        detail: str = "",
        *,
        carried: bool = False,
    ) -> Outcome:
        """A signed notice, from the topic or ``carried`` in a pulled snapshot."""
        # Our own notice, delivered back to us by GossipSub: already counted.
        if notice.observer_id == self.self_id:
            return Outcome(note="own notice")
        # Rule 3: only alive members observe; a fresh identity confirms nothing, nor makes
        # us refute (each refutation is a publish that skips the publish budget).
        observer = self._members.get(notice.observer_id)
        if observer is None or observer.state is not ALIVE:
            state = "unknown" if observer is None else str(observer.state)
            return Outcome(
                rejection=Rejection(
                    RejectReason.NOT_MEMBER, f"suspicion by {notice.observer_id} ({state})"
                )
            )
        # Rule 5: about us, answer it.
        if notice.suspect_id == self.self_id:
            events = self._refute(notice.basis, f"suspected by {notice.observer_id}")
            return Outcome(tuple(events), note="" if events else "suspicion already refuted")
        record = self._members.get(notice.suspect_id)
        # Rule 2: a suspect we never heard of.
        if record is None:
            return Outcome(note=f"suspect {notice.suspect_id} unknown")
        # Rule 3: never beyond what the suspect itself has said.
        basis = min(notice.basis, record.key)
        signed = SignedNotice(notice, statement) if statement else None
        events = self._suspect(
            record,
            notice.suspect_id,
            notice.observer_id,
            basis,
            Cause.SUSPECT_NOTICE,
            now,
            detail,
            signed=signed,
            carried=carried,
        )
        return Outcome(tuple(events))

    def record_statement(self, message: Gossip, statement: bytes) -> None:
        """The envelope our own publish of ``message`` went out in (the view applied the
        message itself before it was signed): kept for our snapshots."""
        if isinstance(message, SuspectNotice):
            record = self._members.get(message.suspect_id)
            suspicion = record.suspicion if record is not None else None
            if suspicion is not None and self.self_id in suspicion.bases:
                suspicion.signed[self.self_id] = SignedNotice(message, statement)
            return
        record = self._members.get(message.node_id)
        if record is None:
            return
        if isinstance(message, HealthDigest) and record.digest.key == message.key:
            record.statement = statement
        elif isinstance(message, LeaveNotice) and record.leave == message:
            record.leave_statement = statement

    def on_connected(self, peer: str, now: float) -> Outcome:
        """libp2p opened a connection to ``peer``. A connection is no statement of the peer's
        health, so it changes no state (SWIM: only the member itself can refute)."""
        self._connected.add(peer)
        record = self._members.get(peer)
        if record is not None and record.suspicion is not None:
            # It is listening after all (or again): an earlier refused dial proves nothing
            # now, and must not make a connected member dead (rule 7).
            record.suspicion.refused_at = None
        return Outcome()

    def on_disconnected(self, peer: str, now: float) -> Outcome:
        """libp2p closed our *last* connection to ``peer``: suspect it at once, not dead."""
        self._connected.discard(peer)
        return Outcome(tuple(self._observe(peer, Cause.DISCONNECTED, now)))

    def on_ping_failed(self, peer: str, now: float) -> Outcome:
        """A ping to ``peer`` went unanswered (adapters/pinger.py)."""
        return Outcome(tuple(self._observe(peer, Cause.PING_FAILED, now)))

    def on_refused(self, peer: str, now: float) -> Outcome:
        """Our dial to every address ``peer`` advertises was refused: dead after
        ``refused_grace`` unless it speaks first (rule 7). The adapter only reports it
        while no connection to ``peer`` is open."""
        if peer in self._connected:
            return Outcome(note=f"refused dial to {peer}, but a connection is open")
        return Outcome(tuple(self._observe(peer, Cause.REFUSED, now)))

    def merge_snapshot(self, snapshot: ViewSnapshot, now: float) -> Outcome:
        """Apply a pulled view: its signed statements, as if from the topic (rule 12)."""
        via = f"via snapshot from {snapshot.responder_id}"
        events: list[Event] = []
        dropped: list[Rejection] = []
        # Digests first, so that observers are members before their notices are weighed.
        for entry in snapshot.members:
            outcome = self._merge_digest(entry, now, via)
            events += outcome.events
            if outcome.rejection is not None and outcome.rejection.reason is not (
                RejectReason.REPLAYED
            ):
                dropped.append(outcome.rejection)
        for entry in snapshot.members:
            record = self._members.get(entry.digest.node_id)
            leave = entry.leave
            if record is None or leave is None or leave.key <= record.key:
                continue
            events += self._apply_leave(record, leave, entry.leave_statement, now, via)
        for entry in snapshot.members:
            for signed in entry.suspicions:
                outcome = self.on_suspect_notice(
                    signed.notice, now, signed.statement, via, carried=True
                )
                events += outcome.events
                if outcome.rejection is not None:
                    dropped.append(outcome.rejection)
        return Outcome(tuple(events), dropped=tuple(dropped))

    def _merge_digest(self, entry: MemberEntry, now: float, via: str) -> Outcome:
        peer = entry.digest.node_id
        # Our own statements: we know better than anyone.
        if peer == self.self_id:
            return Outcome()
        record = self._members.get(peer)
        if record is None:
            if self._is_buried(peer, entry.digest.key):
                return Outcome()
            refused = self._joins.admit(len(self._members), now)
            if refused is not None:
                return Outcome(rejection=refused)
            self._tombstones.pop(peer, None)
            events = self._join(entry.digest, now, via)
            self._members[peer].statement = entry.statement
            return Outcome(tuple(events))
        if entry.digest.key <= record.key:
            return Outcome()
        return Outcome(
            tuple(self._accept_digest(record, entry.digest, now, via, statement=entry.statement))
        )

    def tick(self, now: float) -> list[Event]:
        """Run the timers: silence -> suspect, suspicion timeout -> dead, forgetting."""
        events: list[Event] = []
        n = self.live_count()
        silence = self.config.silence_timeout(n) * self.multiplier
        for peer, record in list(self._members.items()):
            if peer == self.self_id or record.state not in (ALIVE, SUSPECT):
                continue
            if now - record.last_heard >= silence:
                events += self._observe(peer, Cause.SILENCE, now)
        for peer, record in list(self._members.items()):
            suspicion = record.suspicion
            if record.state is not SUSPECT or suspicion is None:
                continue
            # Rule 12: carried notices alone make nobody dead.
            if suspicion.held() or now < self._suspicion_deadline(suspicion, n):
                continue
            # Rule 8: a starved node does not condemn others on its own timing alone.
            if self.starved and self._rests_on_our_timing(suspicion):
                continue
            detail = f"{suspicion.confirmations()} confirmations"
            if suspicion.refused_at is not None:
                detail += ", our dial-back refused"
            events += self._move(record, peer, Cause.SUSPICION_TIMEOUT, now, detail)
        for peer, record in list(self._members.items()):
            if peer == self.self_id:
                continue
            if record.state is DEAD:
                keep = self.config.dead_forget_after
            elif record.state is LEFT:
                keep = self.config.left_forget_after
            else:
                continue
            if now - record.state_since >= keep:
                events += self._forget(peer, record, now)
        for peer, (_, expires) in list(self._tombstones.items()):
            if now >= expires:
                del self._tombstones[peer]
        return events

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` would do something, for a timer-driven
        adapter (None: nothing pending). A held suspicion (rule 8) has no deadline."""
        n = self.live_count()
        silence = self.config.silence_timeout(n) * self.multiplier
        times: list[float] = [expires for _, expires in self._tombstones.values()]
        for peer, record in self._members.items():
            if peer == self.self_id:
                continue
            suspicion = record.suspicion
            if record.state is ALIVE or (
                record.state is SUSPECT
                and suspicion is not None
                and self.self_id not in suspicion.bases
            ):
                times.append(record.last_heard + silence)
            if record.state is SUSPECT and suspicion is not None:
                held = suspicion.held() or (self.starved and self._rests_on_our_timing(suspicion))
                if not held:
                    times.append(self._suspicion_deadline(suspicion, n))
            elif record.state is DEAD:
                times.append(record.state_since + self.config.dead_forget_after)
            elif record.state is LEFT:
                times.append(record.state_since + self.config.left_forget_after)
        return min(times, default=None)

    # --- reading --------------------------------------------------------------------------

    def members(self) -> Mapping[str, Member]:
        return MappingProxyType(
            {peer: self._member(peer, record) for peer, record in sorted(self._members.items())}
        )

    def knows(self, peer: str) -> bool:
        """Whether ``peer`` is in the view, without copying its entry."""
        return peer in self._members

    def member(self, peer: str) -> Member | None:
        record = self._members.get(peer)
        return None if record is None else self._member(peer, record)

    def counts(self) -> dict[MemberState, int]:
        counts = dict.fromkeys(MemberState, 0)
        for record in self._members.values():
            counts[record.state] += 1
        return counts

    def live_count(self) -> int:
        """n in the timing formulas: alive and suspect members we have heard on the topic
        ourselves (rule 2), ourselves included."""
        live = sum(1 for r in self._members.values() if r.state in (ALIVE, SUSPECT) and r.firsthand)
        me = self._members.get(self.self_id)
        return live if me is not None and me.firsthand else live + 1

    def history(self, *, peer: str | None = None, limit: int | None = None) -> list[Transition]:
        """Newest first, optionally for one peer (kept even after it is forgotten)."""
        picked = [t for t in reversed(self._history) if peer is None or t.peer == peer]
        return picked if limit is None else picked[:limit]

    def snapshot(self, now: float) -> ViewSnapshot:
        """Our view for the pull protocol, as the signed statements we hold
        (``encode_snapshot`` leaves out what we hold no envelope of, and trims to size)."""
        entries = []
        for _, record in sorted(self._members.items()):
            suspicions: tuple[SignedNotice, ...] = ()
            if record.state in (SUSPECT, DEAD) and record.suspicion is not None:
                # Receivers drop notices past max_message_age (mesh.digest): so do we.
                oldest = math.floor((now - self.config.max_message_age) * 1000.0)
                signed = record.suspicion.signed
                suspicions = tuple(
                    signed[o] for o in sorted(signed) if signed[o].notice.sent_at_ms >= oldest
                )
            entries.append(
                MemberEntry(
                    digest=record.digest,
                    state=record.state,
                    statement=record.statement,
                    leave=record.leave if record.state is LEFT else None,
                    leave_statement=record.leave_statement if record.state is LEFT else b"",
                    suspicions=suspicions,
                )
            )
        return ViewSnapshot(
            responder_id=self.self_id,
            sent_at_ms=math.floor(now * 1000.0),
            members=tuple(entries),
        )

    def health(self) -> ClusterHealth:
        counts = self.counts()
        me = self._members.get(self.self_id)
        if not self._members:
            return ClusterHealth(Status.STARTING, 0.0, counts, "No members known yet")
        if me is not None and me.state is LEFT:
            return ClusterHealth(Status.STOPPING, 0.0, counts, "This node has left")
        present = {p: r for p, r in self._members.items() if r.state is not LEFT}
        if not present:
            return ClusterHealth(Status.STARTING, 0.0, counts, "Every known member has left")
        score = sum(_weighted_score(r) for r in present.values()) / len(present) if present else 0.0
        unwell = sorted(p for p, r in present.items() if r.digest.status is not Status.HEALTHY)
        if counts[DEAD] * 2 >= len(present):
            # Half or more of the cluster is dead: no majority left.
            status = Status.UNHEALTHY
            message = f"{counts[DEAD]} of {len(present)} members dead"
        elif counts[SUSPECT] or counts[DEAD]:
            status = Status.DEGRADED
            message = f"{counts[SUSPECT]} suspect, {counts[DEAD]} dead of {len(present)} members"
        elif unwell:
            status = Status.DEGRADED
            message = f"Members not healthy: {', '.join(unwell)}"
        else:
            status = Status.HEALTHY
            message = f"All {len(present)} members alive and healthy"
        return ClusterHealth(status, score, counts, message)

    # --- handlers' helpers ----------------------------------------------------------------

    def _is_buried(self, peer: str, key: Version) -> bool:
        tomb = self._tombstones.get(peer)
        return tomb is not None and key <= tomb[0]

    def _join(self, digest: HealthDigest, now: float, detail: str = "") -> list[Event]:
        peer = digest.node_id
        record = _Record(
            digest=digest,
            key=digest.key,
            state=ALIVE,
            state_since=now,
            last_heard=now,
            history=deque(maxlen=self.config.history_per_member),
        )
        self._members[peer] = record
        if peer == self.self_id:
            self._incarnation = max(self._incarnation, digest.incarnation)
        transition = Transition(peer, now, None, ALIVE, Cause.JOINED, None, digest.status, detail)
        self._remember(record, transition)
        return [transition]

    def _apply_leave(
        self, record: _Record, notice: LeaveNotice, statement: bytes, now: float, detail: str = ""
    ) -> list[Event]:
        record.key = notice.key
        record.suspicion = None
        record.leave = notice
        record.leave_statement = statement
        return self._move(record, notice.node_id, Cause.LEAVE, now, detail)

    def _accept_digest(
        self,
        record: _Record,
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
        if suspicion is not None:
            highest = max(basis.incarnation for basis in suspicion.bases.values())
            refuted = digest.incarnation > highest
            # No basis is ahead of what we hold (rule 3), so a newer digest answers every
            # suspicion of the member at once.
            record.suspicion = None
        old_status = record.digest.status
        record.digest = digest
        record.key = digest.key
        record.statement = statement
        record.leave = None
        record.leave_statement = b""
        record.last_heard = now
        if peer == self.self_id:
            self._incarnation = max(self._incarnation, digest.incarnation)
        if restarted:
            cause = Cause.RESTARTED
        elif refuted and record.state in (SUSPECT, DEAD):
            cause = Cause.REFUTED
        else:
            cause = Cause.DIGEST
        return self._move(record, peer, cause, now, detail, old_status=old_status)

    def _observe(self, peer: str, cause: Cause, now: float) -> list[Event]:
        """Our own failure evidence about ``peer`` (rules 3, 6, 8, 9)."""
        record = self._members.get(peer)
        # Rule 2, and we never suspect ourselves.
        if record is None or peer == self.self_id:
            return []
        # Already dead or gone: nothing more to learn.
        if record.state not in (ALIVE, SUSPECT):
            return []
        quiet = self.starved and cause in TIMING_EVIDENCE
        suspicion = record.suspicion
        if suspicion is not None and self.self_id in suspicion.bases:
            # We already count among the observers; note the new kind of evidence, and
            # publish now if all we had before was unpublished starved timing evidence.
            suspicion.local.add(cause)
            self._note_refused(suspicion, cause, now)
            if suspicion.quiet and not quiet:
                suspicion.quiet = False
                if not self._confirmed_enough(suspicion):
                    return [PublishSuspect(peer, suspicion.bases[self.self_id])]
            return []
        events = self._suspect(record, peer, self.self_id, record.key, cause, now)
        suspicion = record.suspicion
        if suspicion is None or self.self_id not in suspicion.bases:
            return events  # it left instead (rule 9)
        suspicion.local.add(cause)
        self._note_refused(suspicion, cause, now)
        suspicion.quiet = quiet
        if not quiet and not self._confirmed_enough(suspicion):
            events.append(PublishSuspect(peer, record.key))
        return events

    @staticmethod
    def _note_refused(suspicion: _Suspicion, cause: Cause, now: float) -> None:
        if cause is Cause.REFUSED and suspicion.refused_at is None:
            suspicion.refused_at = now

    def _confirmed_enough(self, suspicion: _Suspicion) -> bool:
        """Whether the others' evidence alone already holds the suspicion at its minimum
        timeout, so that publishing ours would change nobody's timer (rule 6). memberlist
        stops re-broadcasting at K confirmations too. Without this, every observer of a
        failure published: n - 1 messages per suspicion, and on a loaded 20-node devnet
        the suspicions of missed pings swamped the topic (2026-11-28)."""
        others = len(suspicion.bases) - (1 if self.self_id in suspicion.bases else 0)
        wanted = expected_confirmations(self.live_count(), self.config.suspicion_confirmations)
        return others >= wanted + 1

    def _suspect(
        self,
        record: _Record,
        peer: str,
        observer: str,
        basis: Version,
        cause: Cause,
        now: float,
        detail: str = "",
        *,
        signed: SignedNotice | None = None,
        carried: bool = False,
    ) -> list[Event]:
        """Evidence from ``observer`` that ``peer`` failed after ``basis`` (rules 3, 9, 12)."""
        # SWIM: ignore evidence older than the newest statement we hold.
        if basis < record.key:
            return []
        # Dead or left: a suspicion adds nothing.
        if record.state not in (ALIVE, SUSPECT):
            return []
        label = detail or f"by {observer}"
        # Rule 9: it said it was stopping, so it is gone on purpose.
        if record.digest.status is Status.STOPPING:
            record.suspicion = None
            return self._move(record, peer, Cause.STOPPED, now, f"{cause} {label}")
        if record.state is SUSPECT and record.suspicion is not None:
            # A confirmation, counted once per observer (Lifeguard IV-B), up to a bound.
            suspicion = record.suspicion
            known = suspicion.bases.get(observer)
            if known is None and len(suspicion.bases) >= self.config.max_observers:
                return []
            was_held = suspicion.held()
            suspicion.bases[observer] = basis if known is None else max(known, basis)
            if signed is not None and suspicion.bases[observer] == basis:
                suspicion.signed[observer] = signed
            if carried and known is None:
                suspicion.carried.add(observer)
            elif not carried:
                suspicion.carried.discard(observer)
            if was_held and not suspicion.held():
                # First evidence beyond carried notices: the timer starts now (rule 12).
                suspicion.since = now
            return []
        record.suspicion = _Suspicion(since=now, bases={observer: basis})
        if signed is not None:
            record.suspicion.signed[observer] = signed
        if carried:
            record.suspicion.carried.add(observer)
        return self._move(record, peer, cause, now, label)

    def _refute(self, basis: Version, detail: str) -> list[Event]:
        """Rule 5: answer a suspicion of ourselves with a higher incarnation."""
        me = self._members.get(self.self_id)
        if me is not None:
            # We are leaving: let them.
            if me.state is LEFT:
                return []
            # About an earlier life of ours: our current digests already supersede it.
            if basis.start_time_ms < me.key.start_time_ms:
                return []
            # Beyond what we have said (a later life, a higher incarnation): a lie about
            # our current statement, answered as one, by one incarnation, whatever number
            # it names. Others hold it at what they heard from us (rule 3).
            basis = min(basis, me.key)
        # An incarnation we have already refuted.
        if basis.incarnation < self._incarnation:
            return []
        self._incarnation += 1
        return [PublishRefute(self._incarnation)]

    def _recover(self, now: float) -> list[Event]:
        """Rule 8: our clock is trustworthy again; re-judge what we judged while starved."""
        events: list[Event] = []
        for peer, record in list(self._members.items()):
            suspicion = record.suspicion
            if record.state is not SUSPECT or suspicion is None:
                continue
            if not self._rests_on_our_timing(suspicion):
                continue
            if suspicion.quiet:
                record.suspicion = None
                record.last_heard = now
                events += self._move(record, peer, Cause.LOCAL_RECOVERY, now)
            else:
                suspicion.since = now
        return events

    def _rests_on_our_timing(self, suspicion: _Suspicion) -> bool:
        return set(suspicion.bases) == {self.self_id} and suspicion.local <= TIMING_EVIDENCE

    def _suspicion_deadline(self, suspicion: _Suspicion, n: int) -> float:
        timeout = self.config.suspicion_timeout(n, suspicion.confirmations())
        deadline = suspicion.since + timeout * self.multiplier
        if suspicion.refused_at is not None:
            # Rule 7: a kernel's answer, not a judgement of time: no multiplier.
            deadline = min(deadline, suspicion.refused_at + self.config.refused_grace)
        return deadline

    def _forget(self, peer: str, record: _Record, now: float) -> list[Event]:
        events = self._move(record, peer, Cause.FORGOTTEN, now)
        del self._members[peer]
        ttl = self.config.max_message_age + self.config.max_clock_skew
        self._tombstones[peer] = (record.key, now + ttl)
        return events

    def _move(
        self,
        record: _Record,
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

    def _remember(self, record: _Record, transition: Transition) -> None:
        record.history.append(transition)
        self._history.append(transition)

    def _member(self, peer: str, record: _Record) -> Member:
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
            connected=peer in self._connected,
            version=digest.version,
            http_addr=digest.http_addr,
            p2p_addrs=digest.p2p_addrs,
            history=tuple(record.history),
            firsthand=record.firsthand,
        )


def _replayed(detail: str) -> Outcome:
    return Outcome(rejection=Rejection(RejectReason.REPLAYED, detail))


def _weighted_score(record: _Record) -> float:
    if record.state is ALIVE:
        return record.digest.score
    if record.state is SUSPECT:
        return record.digest.score / 2.0
    return 0.0
