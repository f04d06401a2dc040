"""One simulated node: the real ``ClusterView`` with what ``adapters/gossip.py`` does around
it, minus trio and libp2p.

The adapter's decisions are repeated here with the same pure pieces it uses
(``publish_budget``, ``ClusterConfig.publish_due``, ``TokenBucket``, ``SignerBudget``,
``decode_gossip``, ``EnvelopeCache``; pulls in ``devnet.simulator.pulls``), in the same
order: validate (signature, decode, signer rates), then the view; a view's event becomes a
suspicion to publish, a refutation, or a check of the suspect (a ping out of turn if we are
connected, else a dial-back, which only a peer we have met can get, or in a certified
cluster of at most ``unmet_dial_members`` live members any member: ``dial_back_target``).
Connection events, pings and pulls come from ``devnet.simulator.cluster``. Where this file
simplifies the adapter it says so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from functools import partial

from adapters.gossip_tuning import GossipTuning
from adapters.link_timing import LinkTiming
from adapters.p2p_config import P2PConfig
from adapters.ping_schedule import next_tick, rotation
from adapters.recheck_backoff import RecheckBackoff
from adapters.signer_budget import SignerBudget
from devnet.simulator.events import Timer
from devnet.simulator.host_clock import HostClock
from devnet.simulator.kernel import Kernel, Life
from devnet.simulator.keys import Identity
from devnet.simulator.meeting import MeetingDesk
from devnet.simulator.overlay import GossipParams, Packet, Router
from devnet.simulator.publisher import Publisher
from devnet.simulator.pulls import SimPulls
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Event, Outcome, PublishRefute, PublishSuspect
from mesh.cluster_transitions import Cause, Transition
from mesh.cluster_view import ClusterView
from mesh.digest import decode_gossip, encode_gossip
from mesh.messages import HealthDigest, MemberState, SuspectNotice
from mesh.rejection import Rejection, RejectReason
from mesh.sequencer import Sequencer
from mesh.signed import Envelope
from probes.rate_limit import TokenBucket

__all__ = ["Life", "SimNode"]


class SimNode(HostClock):
    def __init__(
        self,
        index: int,
        cluster: Kernel,
        ident: Identity,
        config: ClusterConfig,
        tuning: GossipTuning,
        params: GossipParams,
        rng: random.Random,
        ping_interval: float,
        ping_timeout: float,
        ping_floor: float | None = None,
    ) -> None:
        self.index = index
        self.cluster = cluster
        self.ident = ident
        self.peer_id = ident.peer_id
        self.config = config
        self.tuning = tuning
        self.rng = rng
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # Measured ping timeouts and the late answers' network score (adapters/
        # link_timing.py, the real class) when the scenario asks for them
        # (Settings.ping_floor), as P2PNode builds them; the node ships without either.
        self.timing = (
            LinkTiming(
                floor=ping_timeout if ping_floor is None else ping_floor,
                ceiling=ping_timeout,
                slow=P2PConfig.ping_slow_answer,
                measures=ping_floor is not None,
            )
            if ping_floor is not None or P2PConfig.ping_network_awareness
            else None
        )
        self.view = ClusterView(self.peer_id, config)
        self.router = Router(index, cluster.wire, params, rng, self._validate, self._mesh_added)
        self.life = Life.DOWN
        self.lag = 0.0  # mean extra delay of everything this node runs (CPU starvation)
        self.sequencer: Sequencer | None = None
        self.connected: set[int] = set()
        self.met: set[int] = set()  # peers we had a connection with: dial-back targets
        self.backlog: list[Callable[[], None]] = []  # what a frozen node will run on waking
        self.verified = 0  # signature checks a real node would have run
        self.validated = 0  # gossip messages decoded and judged
        self.rejected: dict[str, int] = {}
        self._dials = TokenBucket(tuning.dialback_rate, tuning.dialback_burst, 0.0)
        self._signers = SignerBudget(
            tuning,
            certified=config.certified_members,
            max_keys=config.max_members,
            newcomer_burst=config.join_burst,
        )
        self.publisher = Publisher(self)
        self._tick_timer: Timer | None = None
        self._checked: dict[int, float] = {}  # peer -> last check (the Verifier's cooldown)
        self._rechecks = RecheckBackoff(
            base=self.tuning.recheck_base, ceiling=self.tuning.recheck_ceiling
        )
        self.meetings = MeetingDesk(self)
        self.pulls = SimPulls(self)

    # --- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """A fresh start: the first digest goes out at once (no last_sent), timers begin."""
        self.life = Life.UP
        self.start_clock()
        self.publisher.due()
        self.run_timers()

    def start_clock(self) -> None:
        self.sequencer = Sequencer(self.peer_id, math.floor(self.wall * 1000.0))

    def run_timers(self, *, refresh_phase: bool = False) -> None:
        """Start the GossipSub heartbeat, the pinger, anti-entropy and the view's timer,
        each at a random phase; with ``refresh_phase`` (a warm start) the last refresh,
        too."""
        self.later(self.rng.uniform(0, self.router.params.heartbeat), self._heartbeat)
        self._ping_next(None)
        self.pulls.start_syncing()
        if refresh_phase:
            interval = self.config.refresh_interval(self.view.live_count())
            last = self.now - self.rng.uniform(0, interval)
            self.publisher.last_sent = last
            self.publisher.schedule(last + interval - self.now)
        self.arm_tick()

    def set_lag(self, lag: float) -> None:
        """Starve (lag > 0) or relieve the node; its lag check tells its view, as the
        adapter's event-loop lag monitor does."""
        self.lag = lag
        self._handle_events(self.view.set_starved(lag > 0, self.now))
        # The adapter's publisher polls and sees our local health change (Said).
        self.publisher.wake()
        self.arm_tick()

    def leave(self) -> None:
        """GossipService.leave: no more publishing; a leave notice, a flush, then exit."""
        assert self.sequencer is not None
        notice = self.sequencer.leave(self.wall)
        self.publisher.stop()
        self.handle(self.view.on_gossip(notice, self.now))
        self.publisher.send(encode_gossip(notice), "leave")
        self.cluster.loop.later(
            self.tuning.leave_flush_grace + 0.01, lambda: self.cluster.exit(self.index, Life.LEFT)
        )

    # --- connections -----------------------------------------------------------------------

    def on_connected(self, peer: int) -> None:
        if peer in self.connected:
            return
        self.connected.add(peer)
        self.met.add(peer)
        self.router.peer_connected(peer)
        self.handle(self.view.on_connected(self.cluster.peer_id(peer), self.now))
        # The pull waits for the peer's subscription (about one round trip).
        self.later(
            2 * self.cluster.net.base_delay(self.index, peer), lambda: self.pulls.start(peer)
        )

    def on_disconnected(self, peer: int) -> None:
        if peer not in self.connected:
            return
        self.connected.discard(peer)
        self.publisher.decisions.forget(self.cluster.peer_id(peer))
        self.router.peer_lost(peer)
        self.handle(self.view.on_disconnected(self.cluster.peer_id(peer), self.now))
        self._check(peer, urgent=True)

    def _mesh_added(self, peer: int) -> None:
        # A peer new to our mesh hears from us now, not at our next refresh: the decisions
        # see it at the publisher's next poll (PublishDecisions.note_mesh).
        self.publisher.wake()

    def _heartbeat(self) -> None:
        self.router.heartbeat()
        self.later(self.router.params.heartbeat, self._heartbeat)

    # --- inbound gossip (GossipService._validate and _on_message) --------------------------

    def verify(self, raw: bytes) -> Envelope | None:
        self.verified += 1
        return self.cluster.verifier.open(raw)

    def _validate(self, packet: Packet) -> bool:
        self.validated += 1
        envelope = self.verify(packet.raw)
        if envelope is None:
            return self._reject(RejectReason.FORGED)
        decoded = decode_gossip(envelope.data, envelope.signer, self.wall, config=self.config)
        if isinstance(decoded, Rejection):
            return self._reject(decoded.reason)
        member = self.view.knows(envelope.signer)
        if self.config.certified_members and not member and not isinstance(decoded, HealthDigest):
            # The adapter's admission check: a non-member's notice or leave, before any rate.
            return self._reject(RejectReason.NOT_ADMITTED)
        if not self._signers.allow(envelope.signer, member=member, now=self.now):
            return self._reject(RejectReason.FLOODED)
        outcome = self.view.on_gossip(decoded, self.now, packet.raw)
        self.handle(outcome)
        if isinstance(decoded, SuspectNotice) and outcome.accepted:
            self._check(self.cluster.index_of(decoded.suspect_id))
        # A notice or confirmation may bring a deadline forward; a digest only adds or
        # postpones silence deadlines, so it needs a timer only when none is set (each
        # next_deadline() costs O(n)).
        if not isinstance(decoded, HealthDigest) or self._tick_timer is None:
            self.arm_tick()
        return True

    def _reject(self, reason: RejectReason) -> bool:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        return False

    # --- the view's outcomes (GossipService._handle and _apply) ----------------------------

    def handle(self, outcome: Outcome) -> None:
        if outcome.rejection is not None:
            self.rejected[outcome.rejection.reason] = (
                self.rejected.get(outcome.rejection.reason, 0) + 1
            )
        for dropped in outcome.dropped:
            self.rejected[dropped.reason] = self.rejected.get(dropped.reason, 0) + 1
        self._handle_events(outcome.events)

    def _handle_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, Transition):
                self.cluster.observe(self.index, event)
                if event.cause in (Cause.JOINED, Cause.RESTARTED):
                    self.meetings.offer(event.peer)
                if event.to_state is MemberState.SUSPECT:
                    self._check(self.cluster.index_of(event.peer))
            elif isinstance(event, PublishSuspect):
                self.publisher.queue_suspect(event)
            elif isinstance(event, PublishRefute):
                self.publisher.refute(event.incarnation)

    # --- timers of the view ----------------------------------------------------------------

    def arm_tick(self) -> None:
        """Tick at the view's next deadline (the adapter wakes at least every tick_max; the
        view's own contract says nothing happens before next_deadline)."""
        deadline = self.view.next_deadline()
        if deadline is None:
            return
        deadline = max(deadline, self.now + 0.01)  # the adapter's 10 ms floor
        timer = self._tick_timer
        if timer is not None and not timer.cancelled and timer.at <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._tick_timer = self.later(deadline - self.now, self._tick)

    def _tick(self) -> None:
        self._tick_timer = None
        self._handle_events(self.view.tick(self.now))
        self.arm_tick()

    def wired(self, peer: int) -> None:
        """A connection of a warm start: made long ago, announced and pulled already."""
        self.connected.add(peer)
        self.met.add(peer)
        self.publisher.decisions.announced.add(self.cluster.peer_id(peer))
        self.view.on_connected(self.cluster.peer_id(peer), self.now)
        self.router.peer_connected(peer)

    # --- checks of suspects (GossipService._check_suspect, _verify) ------------------------

    def _check(self, peer: int, *, urgent: bool = False) -> None:
        member = self.view.member(self.cluster.peer_id(peer))
        if member is None or member.state is not MemberState.SUSPECT or self.life is not Life.UP:
            return
        last = self._checked.get(peer, -math.inf)
        if not urgent and self.now - last < self.tuning.dialback_cooldown:
            return  # simplified: the Verifier queues it; the check under way will answer
        self._checked[peer] = self.now
        if peer in self.connected:
            name = self.cluster.peer_id(peer)
            if not self._rechecks.allows(name, self.now):
                return  # SuspectChecks.verify: backed off after an unanswered one

            def checked(ok: bool) -> None:
                if ok:
                    self._rechecks.answered(name)
                else:
                    self._rechecks.missed(name, self.now)
                    self._dial_back(peer)

            self._ping(peer, checked, scored=False)
        else:
            self._dial_back(peer)

    def _dial_back(self, peer: int) -> None:
        # dial_back_target: a member we met, or any certified one where it advertised
        # itself, whose refusal is then ours alone (not a witness's: vouch).
        vouch = peer in self.met
        unmet = self.config.certified_members and (
            self.view.live_count() <= self.tuning.unmet_dial_members
        )
        if not (vouch or unmet) or not self._dials.take(self.now):
            return  # no address we may dial
        done = partial(self._dialled, vouch=vouch)
        self.cluster.dial(self.index, peer, self.tuning.dialback_timeout, done)

    def _dialled(self, peer: int, refused: bool, *, vouch: bool = True) -> None:
        if refused:
            pid = self.cluster.peer_id(peer)
            self.handle(self.view.on_refused(pid, self.now, vouch=vouch))
            self.arm_tick()

    # --- liveness pings (adapters/pinger.py) -----------------------------------------------

    def _ping_next(self, tick: int | None) -> None:
        """Ping the peer whose turn ``tick`` is (None: none yet), then wait for our next
        tick of the wall clock: the wheel of adapters/ping_schedule.py, as LinkPinger.run."""
        # Self-doubt stretches the round-robin's interval and timeout (LinkPinger.scale).
        scale = self.view.doubt + 1
        if tick is not None:
            names = {self.cluster.peer_id(peer): peer for peer in self.connected}
            turn = rotation(tick, self.peer_id, names)
            if turn:
                peer = names[turn[0]]
                self._ping(peer, lambda ok: self._pinged(peer, ok), scale)
        after = next_tick(self.wall, self.ping_interval, tick, scale)
        self.later(max(0.0, after * self.ping_interval - self.wall), lambda: self._ping_next(after))

    def _ping(
        self, peer: int, done: Callable[[bool], None], scale: int = 1, *, scored: bool = True
    ) -> None:
        """One ping within ``scale`` times the peer's timeout; its outcome teaches the
        timing, whose score the view hears (LinkPinger._probe, ViewTimers)."""
        name = self.cluster.peer_id(peer)
        timeout = self.ping_timeout if self.timing is None else self.timing.timeout(name)
        timeout *= scale
        # LinkPinger.patient: a peer whose digest says it is starved gets more time and
        # no early verdict.
        starved_peer = self.view.reported_health(name) > 0
        if starved_peer:
            timeout *= P2PConfig.ping_patient_factor
        began = self.now

        def outcome(ok: bool) -> None:
            if self.timing is not None:
                if ok:
                    # LinkPinger: round-robin answers of members only.
                    scored_here = scored and self.view.knows(name)
                    self.timing.answered(name, self.now - began, scored=scored_here)
                else:
                    self.timing.unanswered(name)
                self.view.set_network_health(self.timing.score)
            done(ok)

        early = None if starved_peer else P2PConfig.ping_early_after
        self.cluster.ping(
            self.index,
            peer,
            timeout,
            outcome,
            None if early is None else early * scale,
            P2PConfig.ping_clean_for,
        )

    def _pinged(self, peer: int, answered: bool) -> None:
        # Failures while starved are ignored (LinkPinger.starved).
        if not answered and self.lag == 0 and peer in self.connected:
            self.handle(self.view.on_ping_failed(self.cluster.peer_id(peer), self.now))
            self.arm_tick()
