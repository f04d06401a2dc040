"""The cluster view: who is alive, suspect, dead or gone, as one node sees it.

Pure code in the manner of h11's ``_state.py``: the adapter feeds it validated messages
(``mesh.digest``) and libp2p's connection events, each with the time as a value, and gets
back plain data (``mesh.cluster_events``): ``Transition`` records and the actions
``PublishSuspect`` and ``PublishRefute``. Nothing here sleeps, sends or reads a clock.

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
The rules are numbered once, here. Rules 1 and 2 are this module's; each of the others is
written out in full beside the code that carries it out, as memberlist keeps its rules in
``state.go``, ``suspicion.go`` and ``awareness.go``.

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
   our peers' n stays small, which would have them suspect us by silence. Where an
   admission policy certifies every member (``certified_members``) they count once two
   responders have listed them alive: no responder can list minted members there, but one
   could list a member that died long ago, whose last signed digest has no deadline. Notices and
   connection events about peers we have no digest of are ignored, as memberlist ignores
   "a node we've never heard of".
3. Suspicion is evidence against a Version, never beyond what the suspect has said itself;
   only alive members observe, each once (``mesh.cluster_suspicions``).
4. Answer. A newer statement of the member answers every suspicion of it
   (``mesh.cluster_roster``).
5. Self. We never suspect ourselves; a suspicion of us by any member of our view, alive
   or not, is refuted with a higher incarnation, raised by one at most
   (``mesh.cluster_suspicions``).
6. Sharing. A suspicion we originate or confirm is published once, unless K
   confirmations are known already (``mesh.cluster_suspicions``).
7. Death. SUSPECT becomes DEAD after the suspicion timeout, or soon after our own dial to
   it was refused, or, among certified members, after enough witnesses' were
   (``mesh.suspicion``).
8. Local health (Lifeguard IV-A). Timeouts grow while we are starved, and our timing
   evidence is then not trusted; they grow too while our pings are answered late, a
   noisy network, whose evidence stands. A suspicion of a member also grows by the local
   health its own last digest reported (``mesh.awareness``).
9. Stopping. Failure evidence about a member that said it was stopping means it left
   (``mesh.cluster_suspicions``).
10. Leave. A leave notice makes the member LEFT at once, from any state
    (``mesh.cluster_roster``).
11. Forgetting. DEAD and LEFT members are dropped after a while (``mesh.cluster_timers``).
12. Snapshots carry signed statements, not the responder's word, applied as if from the
    topic; carried notices make a member SUSPECT, never DEAD (``mesh.cluster_snapshot``).

The transitions are the table ``TRANSITIONS`` (``mesh.cluster_transitions``); the handlers
work out which cause applies (early-return guards, one comment each) and look the new state
up there.

Parts
-----
``ClusterView`` is the coordinator: it takes the inputs and hands each to the part that
owns its rules, all of them sharing one member table, the ``Roster``
(``mesh.cluster_roster``). ``Suspicions`` (``mesh.cluster_suspicions``) handles failure
evidence, ``Awareness`` (``mesh.awareness``) our local health, ``Timers``
(``mesh.cluster_timers``) the clock-driven rules, ``Snapshots`` (``mesh.cluster_snapshot``)
the pull protocol, and ``cluster_health`` (``mesh.cluster_health``) the cluster as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from mesh.awareness import Awareness, reported_health
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Event, Outcome
from mesh.cluster_health import ClusterHealth, cluster_health
from mesh.cluster_page import ClusterPage
from mesh.cluster_roster import Member, Roster
from mesh.cluster_snapshot import Snapshots
from mesh.cluster_suspicions import Suspicions
from mesh.cluster_timers import Timers
from mesh.cluster_transitions import Cause, Transition
from mesh.election import Candidate
from mesh.messages import (
    Gossip,
    HealthDigest,
    LeaveNotice,
    MemberState,
    SignedNotice,
    SuspectNotice,
    ViewSnapshot,
)
from mesh.rejection import Rejection, RejectReason
from mesh.view_bounds import JoinGate
from mesh.view_summary import summarise

__all__ = ["ClusterView"]


class ClusterView:
    """One node's view of the cluster; see the module docstring for the rules."""

    def __init__(self, self_id: str, config: ClusterConfig | None = None) -> None:
        self.self_id = self_id
        self.config = config if config is not None else ClusterConfig()
        self._roster = Roster(self_id, self.config)
        self._awareness = Awareness(self.config.awareness_max, self.config.doubt_window)
        self._joins = JoinGate(
            self.config.max_members, self.config.join_burst, self.config.join_rate
        )
        self._suspicions = Suspicions(self._roster, self._awareness)
        self._timers = Timers(self._roster, self._suspicions, self._awareness)
        self._snapshots = Snapshots(self._roster, self._suspicions, self._joins)

    # --- local health (Lifeguard IV-A, rule 8) --------------------------------------------

    @property
    def local_health(self) -> int:
        return self._awareness.score

    @property
    def starved(self) -> bool:
        return self._awareness.starved

    @property
    def doubt(self) -> int:
        """Self-doubt (``mesh.self_doubt``) as of the last input or tick: 0 up to
        awareness_max - 1. The pinger stretches its interval and timeout by it + 1."""
        return self._awareness.doubted

    @property
    def multiplier(self) -> int:
        """memberlist's ``awareness.ScaleTimeout``: timeouts times (score + 1)."""
        return self._awareness.multiplier

    def set_local_health(self, score: int, now: float) -> list[Event]:
        """Set the local health score (0 = healthy), clamped to [0, awareness_max - 1]."""
        if self._awareness.set(score):
            return self._suspicions.recover(now)
        return []

    def set_network_health(self, score: int) -> None:
        """How noisy our network is (late ping answers, ``adapters.link_timing``): it
        stretches our timeouts as local health does, without distrusting our evidence."""
        self._awareness.set_network(score)

    def set_starved(self, starved: bool, now: float) -> list[Event]:
        """The event-loop lag check's verdict: starved means the maximum multiplier."""
        return self.set_local_health(self.config.awareness_max - 1 if starved else 0, now)

    @property
    def local_incarnation(self) -> int:
        """Our incarnation as far as the view knows (own digests and refutations)."""
        return self._roster.incarnation

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
        record = self._roster.records.get(peer)
        if record is None:
            # Rule 1: a replay must not bring a forgotten member back.
            if self._roster.is_buried(peer, digest.key):
                return _replayed(f"digest {tuple(digest.key)} of forgotten {peer}")
            # Rule 2: the view's size and the rate of new members are bounded.
            if peer != self.self_id:
                refused = self._joins.admit(len(self._roster.records), now)
                if refused is not None:
                    return Outcome(rejection=refused)
            self._roster.tombstones.pop(peer, None)
            events = self._roster.join(digest, now)
            self._roster.records[peer].statement = statement
            self._roster.records[peer].firsthand = True
            return Outcome(tuple(events))
        # Rule 1: only newer statements count.
        if digest.key <= record.key:
            return _replayed(f"digest {tuple(digest.key)} <= {tuple(record.key)} of {peer}")
        record.firsthand = True
        return Outcome(tuple(self._roster.accept_digest(record, digest, now, statement=statement)))

    def on_leave(self, notice: LeaveNotice, now: float, statement: bytes = b"") -> Outcome:
        peer = notice.node_id
        record = self._roster.records.get(peer)
        if record is None:
            if self._roster.is_buried(peer, notice.key):
                return _replayed(f"leave {tuple(notice.key)} of forgotten {peer}")
            return Outcome(note=f"leave of unknown peer {peer}")
        # Rule 1: a leave older than what we hold is a replay.
        if notice.key <= record.key:
            return _replayed(f"leave {tuple(notice.key)} <= {tuple(record.key)} of {peer}")
        return Outcome(tuple(self._roster.apply_leave(record, notice, statement, now)))

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
        return self._suspicions.on_notice(notice, now, statement, detail, carried=carried)

    def record_statement(self, message: Gossip, statement: bytes) -> None:
        """The envelope our own publish of ``message`` went out in (the view applied the
        message itself before it was signed): kept for our snapshots."""
        if isinstance(message, SuspectNotice):
            record = self._roster.records.get(message.suspect_id)
            suspicion = record.suspicion if record is not None else None
            if suspicion is not None and self.self_id in suspicion.bases:
                suspicion.signed[self.self_id] = SignedNotice(message, statement)
            return
        record = self._roster.records.get(message.node_id)
        if record is None:
            return
        if isinstance(message, HealthDigest) and record.digest.key == message.key:
            record.statement = statement
        elif isinstance(message, LeaveNotice) and record.leave == message:
            record.leave_statement = statement

    def on_connected(self, peer: str, now: float) -> Outcome:
        """libp2p opened a connection to ``peer``. A connection is no statement of the peer's
        health, so it changes no state (SWIM: only the member itself can refute)."""
        self._roster.connected.add(peer)
        record = self._roster.records.get(peer)
        if record is not None and record.suspicion is not None:
            # It is listening after all (or again): an earlier refused dial, ours or a
            # witness's, proves nothing now, and must not make a connected member dead
            # (rule 7).
            record.suspicion.refused_at = None
            record.suspicion.witnesses.clear()
        return Outcome()

    def on_answered(self, peer: str, now: float) -> Outcome:
        """Our ping to ``peer`` was answered or our dial to it connected: it listens, so no
        refusal, ours or a witness's, counts in its suspicion from now on (rule 7). Not
        an answer to the suspicion: only the member's own statement is (rule 4)."""
        record = self._roster.records.get(peer)
        if record is not None and record.suspicion is not None:
            record.suspicion.refused_at = None
            record.suspicion.witnesses.clear()
            record.suspicion.listening = True
        return Outcome()

    def on_disconnected(self, peer: str, now: float) -> Outcome:
        """libp2p closed our *last* connection to ``peer``: suspect it at once, not dead."""
        self._roster.connected.discard(peer)
        return Outcome(tuple(self._suspicions.observe(peer, Cause.DISCONNECTED, now)))

    def on_ping_failed(self, peer: str, now: float) -> Outcome:
        """A ping to ``peer`` went unanswered (adapters/pinger.py). An alive member's
        failure also counts towards our self-doubt; a stranger's, or a suspect's, does
        not (``mesh.self_doubt``)."""
        record = self._roster.records.get(peer)
        if record is not None and record.state is MemberState.ALIVE and peer != self.self_id:
            self._awareness.doubt.ping_failed(peer, now)
            self._awareness.refresh(now)
        return Outcome(tuple(self._suspicions.observe(peer, Cause.PING_FAILED, now)))

    def on_refused(
        self, peer: str, now: float, *, unanswered: bool = False, vouch: bool = True
    ) -> Outcome:
        """Our dial-back of ``peer`` was refused (adapters/dialback.py): dead after
        ``refused_grace`` unless it speaks first (rule 7). Ignored while a connection to
        ``peer`` looks open, unless our own ping on it just went ``unanswered``: a killed
        process's connection looks open until we read its reset, which a busy node may
        not do for seconds, while its kernel refuses dials at once. Not ``vouch``: the
        address was only the member's word (we never met it there), so the refusal is our
        evidence alone and is not published as a witness's."""
        if peer in self._roster.connected and not unanswered:
            return Outcome(note=f"refused dial to {peer}, but a connection is open")
        return Outcome(tuple(self._suspicions.observe(peer, Cause.REFUSED, now, vouch=vouch)))

    def merge_snapshot(self, snapshot: ViewSnapshot, now: float) -> Outcome:
        """Apply a pulled view: its signed statements, as if from the topic (rule 12)."""
        return self._snapshots.merge(snapshot, now)

    def tick(self, now: float) -> list[Event]:
        """Run the timers: silence -> suspect, suspicion timeout -> dead, forgetting."""
        return self._timers.tick(now)

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` would do something, for a timer-driven
        adapter (None: nothing pending). A held suspicion (rule 8) has no deadline."""
        return self._timers.next_deadline()

    # --- reading --------------------------------------------------------------------------

    def members(self) -> Mapping[str, Member]:
        return MappingProxyType(
            {
                peer: self._roster.copy(peer, record)
                for peer, record in sorted(self._roster.records.items())
            }
        )

    def candidates(self) -> Iterable[Candidate]:
        """Every member as the election reads it (``mesh.election``), without copies: at
        10,000 members a copy of each costs more than the election itself."""
        return self._roster.records.values()

    def page(self, page: ClusterPage) -> tuple[list[Member], int, str | None]:
        """The members ``page`` selects, copied (only those), how many match its filter in
        all, and the cursor of the next page (``mesh.cluster_page``)."""
        shown, total, following = page.select(self._roster.records)
        return [self._roster.copy(record.node_id, record) for record in shown], total, following

    def knows(self, peer: str) -> bool:
        """Whether ``peer`` is in the view, without copying its entry."""
        return peer in self._roster.records

    def reported_health(self, peer: str) -> int:
        """The local health ``peer``'s last digest reported, at least starting_health while
        it says it is starting (``mesh.awareness.reported_health``; 0 for a stranger)."""
        record = self._roster.records.get(peer)
        if record is None:
            return 0
        return reported_health(record.digest, self.config.starting_health)

    def certificate(self, peer: str) -> MemberCertificate | None:
        """The certificate ``peer``'s last digest showed (None for a stranger or none)."""
        record = self._roster.records.get(peer)
        return None if record is None else record.digest.certificate

    def wire_level(self, peer: str) -> int:
        """The wire level ``peer``'s last digest said it reads (0 for a stranger)."""
        record = self._roster.records.get(peer)
        return 0 if record is None else record.digest.wire_level

    def wire_level_floor(self) -> int:
        """The lowest wire level among the live members, ourselves included: what a digest
        that all of them must read may use (mesh/wire_level.py)."""
        live = (MemberState.ALIVE, MemberState.SUSPECT)
        levels = [r.digest.wire_level for r in self._roster.records.values() if r.state in live]
        return min(levels, default=0)

    def member(self, peer: str) -> Member | None:
        record = self._roster.records.get(peer)
        return None if record is None else self._roster.copy(peer, record)

    def counts(self) -> dict[MemberState, int]:
        return self._roster.counts()

    def member_count(self) -> int:
        """Members of any state we hold, however we heard of them, ourselves included."""
        return len(self._roster.records)

    def live_count(self) -> int:
        """n in the timing formulas: alive and suspect members we have heard on the topic
        ourselves (rule 2), ourselves included."""
        return self._roster.live_count()

    def history(self, *, peer: str | None = None, limit: int | None = None) -> list[Transition]:
        """Newest first, optionally for one peer (kept even after it is forgotten)."""
        return self._roster.history(peer=peer, limit=limit)

    def snapshot(
        self,
        now: float,
        after: str = "",
        limit: int | None = None,
        buckets: frozenset[int] | None = None,
    ) -> ViewSnapshot:
        """One page of our view for the pull protocol: the members after ``after``, in
        ``buckets`` if given, at most ``limit`` (``mesh.cluster_snapshot``)."""
        return self._snapshots.build(now, after, limit, buckets)

    def summary(self) -> bytes:
        """Our view in 512 bytes, for anti-entropy (``mesh.view_summary``)."""
        records = self._roster.records
        return summarise((peer, r.key, r.state) for peer, r in records.items())

    def health(self) -> ClusterHealth:
        return cluster_health(self._roster)


def _replayed(detail: str) -> Outcome:
    return Outcome(rejection=Rejection(RejectReason.REPLAYED, detail))
