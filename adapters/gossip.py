"""Health gossip on a running py-libp2p node: the trio and libp2p glue around ClusterView.

``GossipService`` is ``nursery.start``-able. It publishes this node's signed digest on
``CHORUS/health-scores/v1``, feeds what peers publish (and libp2p's connection events) to
the pure ``mesh.cluster_view.ClusterView``, carries out the view's actions (publish a
suspicion, refute one), serves and pulls whole views over ``/chorus/health-view/1.0.0``,
and says goodbye on a graceful shutdown (``leave``).

Wiring (the node runner does this)::

    gossip = GossipService(p2p, manager, cluster_config, registry=registry,
                           starved=lambda: lag.starved)
    manager.register(gossip.election_check())
    await nursery.start(gossip.run)
    gossip.http_addr = f"http://{host}:{http_port}"     # once HTTP has bound its port
    # Before the host closes (open_p2p_node's exit); after the manager reports stopping,
    # so peers first see a "stopping" digest, then the leave.
    shutdown.register(Component("gossip-leave", gossip.leave, priority=20, timeout=2.0))
    add_cluster_routes(app, gossip)     # GET /health/cluster[?state=&limit=&after=], /<peer>

Clocks. Two, both injectable:
- ``wall_clock`` (Unix seconds, default ``time.time``) dates what goes on the wire (digest
  ``sent_at``, snapshot ``sent_at``), checks the age of what comes in (``decode_*``), feeds
  the election tracker (start times are wall-clock) and the JSON timestamps;
- ``clock`` (default ``trio.current_time``, monotonic) is the view's time: every timer of
  the failure detector (silence, suspicion, forgetting) and the publish schedule. A wall
  clock that steps (NTP) can then never suspect or revive anybody.

The parts. This module owns the view and carries out what it decides: transitions logged,
suspicions and refutations published, suspects checked, new members met, dead links
dropped. Collaborators, each handed what it needs, do the rest:

- ``adapters.gossip_publisher``: our digest and notices, when ``adapters.publish_decisions``
  says they are due, within the budget of ``adapters.gossip_tuning``;
- ``adapters.gossip_inbound`` (the topic's validator and handler), ``adapters.view_pull``
  (the pull protocol), ``adapters.gossip_connections`` (our connections);
- ``adapters.link_keeper``: redials of lost peers, meetings of new members, dead links;
- ``adapters.suspect_checks``: a ping out of turn or a dial-back of each suspect;
- ``adapters.view_timers``: the view's timers, the score's last hour, the election;
- ``adapters.gossip_metrics`` (counters, gauges, log rules), ``adapters.election_check``.

A loop's or handler's error is caught, counted in ``chorus_gossip_errors_total{where}``, logged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client import CollectorRegistry

from adapters.election_check import ELECTION_INTERVAL, ELECTION_TIMEOUT, election_check
from adapters.envelope import EnvelopeCache
from adapters.gossip_connections import Connections
from adapters.gossip_inbound import InboundGossip
from adapters.gossip_metrics import GossipMetrics, log_transition
from adapters.gossip_publisher import GossipPublisher
from adapters.gossip_tuning import GossipTuning
from adapters.link_keeper import LinkKeeper
from adapters.suspect_checks import SuspectChecks
from adapters.view_pull import PULL_PROTOCOL, PullClient, PullServer
from adapters.view_timers import ViewTimers
from mesh import cluster_json as shapes
from mesh.admission import AdmissionPolicy
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig, certified
from mesh.cluster_events import Event, Outcome, PublishRefute, PublishSuspect
from mesh.cluster_page import EVERY, ClusterPage
from mesh.cluster_transitions import Cause, Transition
from mesh.cluster_view import ClusterView
from mesh.digest import TOPIC
from mesh.election import ElectionHealth, ElectionTracker
from mesh.manager import CheckManager
from mesh.messages import MemberState
from mesh.model import HealthCheck
from mesh.score_history import ScoreHistory
from mesh.sequencer import Sequencer

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's annotations for mypy.
    from trio_typing import TaskStatus

    from adapters.p2p_node import P2PNode

__all__ = ["GossipService"]

logger = logging.getLogger(__name__)


def _never() -> bool:
    return False


class GossipService:
    """Health gossip for one node; ``await nursery.start(service.run)``.

    ``http_addr`` is what peers are told to reach our HTTP endpoints at: a string or a
    callable read at every publish (HTTP may bind port 0 after this is built), and it can
    be assigned later (``service.http_addr = "http://..."``).
    """

    def __init__(
        self,
        node: P2PNode,
        manager: CheckManager,
        config: ClusterConfig,
        *,
        registry: CollectorRegistry,
        http_addr: str | Callable[[], str] = "",
        starved: Callable[[], bool] = _never,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = trio.current_time,
        tuning: GossipTuning | None = None,
        election: ElectionTracker | None = None,
        admission: AdmissionPolicy | None = None,
        certificate: MemberCertificate | None = None,
    ) -> None:
        self._node = node
        self._tuning = tuning = tuning or GossipTuning()
        self._http_addr = http_addr
        self._starved = starved
        self._wall = wall = wall_clock
        self._clock = clock
        self.self_id: str = node.peer_id
        self.admission = admission if admission is not None else AdmissionPolicy()
        config = certified(config, self.admission.enabled)
        self.view = view = ClusterView(self.self_id, config)
        self.election = election or ElectionTracker()
        self.score_history = ScoreHistory()  # the dashboard's hourly chart
        self.sequencer = Sequencer(self.self_id, math.floor(manager.start_time * 1000.0))
        self.envelopes = EnvelopeCache(size=max(4096, 2 * config.max_members))
        self._metrics = metrics = GossipMetrics(
            registry, view, rejection_log_keys=tuning.rejection_log_keys
        )
        self._left = False
        self._running = False
        self._nursery: trio.Nursery | None = None
        self._connections = Connections(
            self.self_id,
            tuning.event_queue,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            on_ping_failed=self._on_ping_failed,
            loop_failed=metrics.loop_failed,
            clock=clock,
        )
        # The peers we are connected to: the parts read it, only the events change it.
        self._connected = linked = self._connections.peers
        handle = self._handle
        self._publisher = GossipPublisher(
            node,
            manager,
            self.sequencer,
            view,
            config,
            tuning,
            metrics,
            handle=handle,
            http_addr=lambda: self.http_addr,
            certificate=certificate,
            left=lambda: self._left,
            clock=clock,
            wall_clock=wall,
        )
        self._checks = SuspectChecks(
            node,
            view,
            tuning,
            metrics,
            connected=linked,
            handle=handle,
            left=lambda: self._left,
            clock=clock,
        )
        node.pinger.scale = lambda: view.doubt + 1  # Lifeguard: ping slower when in doubt
        self._inbound = InboundGossip(
            self.self_id,
            view,
            config,
            tuning,
            metrics,
            self.admission,
            handle=handle,
            check_suspect=self._checks.check,
            running=lambda: self._running,
            clock=clock,
            wall_clock=wall,
        )
        self._pulls = PullClient(
            node,
            view,
            config,
            tuning,
            metrics,
            self.envelopes,
            self.admission,
            connected=linked,
            admitted=self._inbound.admitted,
            handle=handle,
            wake=self._publisher.wake,
            running=lambda: self._running,
            clock=clock,
            wall_clock=wall,
        )
        self._server = PullServer(
            view, tuning, metrics, running=lambda: self._running, clock=clock, wall_clock=wall
        )
        self._links = LinkKeeper(
            node,
            view,
            tuning,
            self.self_id,
            connected=linked,
            left=lambda: self._left,
            start=self._start,
            loop_failed=metrics.loop_failed,
            clock=clock,
        )
        self._timers = ViewTimers(
            view,
            self.election,
            self.score_history,
            apply=self._apply,
            starved=starved,
            network=lambda: node.pinger.network_score(),
            tick_max=tuning.tick_max,
            loop_failed=metrics.loop_failed,
            clock=clock,
            wall_clock=wall,
        )
        self.meetings = self._links.meetings

    # --- public API -------------------------------------------------------------------

    @property
    def http_addr(self) -> str:
        value = self._http_addr() if callable(self._http_addr) else self._http_addr
        return str(value)

    @http_addr.setter
    def http_addr(self, value: str | Callable[[], str]) -> None:
        self._http_addr = value
        self._publisher.wake()

    @property
    def left(self) -> bool:
        return self._left

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, serve pulls, publish and run the view's timers until cancelled.

        Reports started once our first digest is in our own view and published."""
        from libp2p.custom_types import TProtocol

        receive = self._connections.open()
        host = self._node.host
        # The pull handler before the subscription: a peer that sees us subscribed to the
        # topic may pull from us at once (adapters.view_pull).
        host.set_stream_handler(TProtocol(PULL_PROTOCOL), self._server.serve)
        remove_listener: Callable[[], None] | None = None
        remove_ping_listener: Callable[[], None] | None = None
        try:
            pubsub = self._node.pubsub
            pubsub.set_validator(TOPIC, self._inbound.validate)
            await pubsub.subscribe(TOPIC, self._inbound.on_message)
            conns = self._connections
            remove_listener = self._node.add_peer_listener(conns.connected, conns.lost)
            remove_ping_listener = self._node.add_ping_failure_listener(conns.ping_failed)
            self._node.pinger.starved = self._starved
            self._node.pinger.patient = lambda peer: self.view.reported_health(peer) > 0
            self._node.pinger.scored = self.view.knows
            self._running = True
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                # Peers dialled before we listened (bootstrap starts with the node).
                for peer in self._node.connected_peers():
                    self._connections.connected(peer)
                await self._publisher.publish_digest(self._clock())
                nursery.start_soon(self._connections.run, receive)
                nursery.start_soon(self._timers.run)
                nursery.start_soon(self._publisher.run)
                nursery.start_soon(self._links.run)
                nursery.start_soon(self._checks.run)
                nursery.start_soon(self._pulls.run)
                task_status.started()
        finally:
            # Neither the subscription nor the pull handler is undone; both check _running.
            # LibP2PPubSub has no unsubscribe, and py-libp2p reads its handler table after
            # an await in negotiation: a handler removed then raises KeyError and ends us.
            self._running = False
            self._nursery = None
            self._connections.close()
            for remove in (remove_listener, remove_ping_listener):
                if remove is not None:
                    remove()

    async def leave(self) -> None:
        """Tell the cluster we are leaving, and give GossipSub a moment to send it.

        From now on nothing else is published (a later digest would make us alive again).
        The flush waits until py-libp2p's per-peer outbound queues are empty (bounded by
        ``leave_flush_timeout``), then ``leave_flush_grace`` for the write of the frame
        last taken off a queue. Call it before the host closes."""
        if self._left:
            return
        self._left = True
        await self._publisher.leave()
        logger.info("left the cluster (%s)", self.self_id)

    def election_health(self) -> ElectionHealth:
        return self.election.health(self._wall())

    def election_check(
        self, *, interval: float = ELECTION_INTERVAL, timeout: float = ELECTION_TIMEOUT
    ) -> HealthCheck:
        """The "election-health" check (``adapters.election_check``)."""
        return election_check(
            self.election,
            self.view,
            clock=self._clock,
            wall_clock=self._wall,
            interval=interval,
            timeout=timeout,
        )

    def cluster_json(self, now: float | None = None, page: ClusterPage = EVERY) -> dict[str, Any]:
        """Body of GET /health/cluster, with the members ``page`` selects; ``now`` on the
        view's clock (default: its clock)."""
        now = self._clock() if now is None else now
        return shapes.cluster_json(
            self.view,
            now=now,
            wall_now=self._wall(),
            history=self._tuning.history_in_json,
            scores=self.score_history.points(),
            page=page,
        )

    def peer_json(self, peer_id: str) -> dict[str, Any] | None:
        """Body of GET /health/cluster/<peer id>; None for a peer the view does not hold."""
        return shapes.peer_json(
            self.view,
            peer_id,
            now=self._clock(),
            wall_now=self._wall(),
            history=self._tuning.history_in_json,
        )

    # --- outcomes of the view ---------------------------------------------------------

    def _handle(self, outcome: Outcome, source: str) -> None:
        if outcome.rejection is not None:
            self._metrics.count_rejection(source, outcome.rejection)
        for dropped in outcome.dropped:
            self._metrics.count_rejection(source, dropped)
        self._apply(outcome.events)

    def _apply(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, Transition):
                self._timers.membership_changed()
                log_transition(event)
                if event.cause in (Cause.JOINED, Cause.RESTARTED) and not self._left:
                    self._links.offer_meeting(event.peer)
                if event.to_state is MemberState.DEAD and event.peer in self._connected:
                    self._links.drop_dead_link(event.peer)
                if event.to_state is MemberState.SUSPECT:
                    self._checks.check(event.peer)
            elif isinstance(event, PublishSuspect):
                self._publisher.queue_suspect(event)
            elif isinstance(event, PublishRefute):
                # SWIM 4.2: answer with a higher incarnation, at once (no rate limit).
                self._publisher.refute(event.incarnation)

    def _start(self, task: Callable[[str], Awaitable[None]], peer: str) -> None:
        """``task(peer)`` in our nursery; nothing while we do not run."""
        if self._nursery is not None:
            self._nursery.start_soon(task, peer)

    # --- connection events (adapters.gossip_connections) ------------------------------

    def _on_connected(self, peer: str, now: float) -> None:
        self._links.back(peer)
        self._handle(self.view.on_connected(peer, now), peer)
        self._start(self._pulls.pull_from, peer)

    def _on_disconnected(self, peer: str, now: float) -> None:
        self._publisher.forget(peer)
        self._handle(self.view.on_disconnected(peer, now), peer)
        self._checks.check(peer, urgent=True)
        self._links.lost(peer, now)

    def _on_ping_failed(self, peer: str, now: float) -> None:
        self._handle(self.view.on_ping_failed(peer, now), peer)
