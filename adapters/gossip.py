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
    add_json_route(app, "/health/cluster", gossip.cluster_json)   # and peer_json(peer_id)

Clocks. Two, both injectable:
- ``wall_clock`` (Unix seconds, default ``time.time``) dates what goes on the wire (digest
  ``sent_at``, snapshot ``sent_at``), checks the age of what comes in (``decode_*``), feeds
  the election tracker (start times are wall-clock) and the JSON timestamps;
- ``clock`` (default ``trio.current_time``, monotonic) is the view's time: every timer of
  the failure detector (silence, suspicion, forgetting) and the publish schedule. A wall
  clock that steps (NTP) can then never suspect or revive anybody.

Publishing. Our digest goes out when its status, score bucket (``SCORE_BUCKET``),
components' buckets, addresses change (at most once per ``min_publish_interval``), when a
peer we never announced ourselves to joins our GossipSub mesh (so a joiner hears of us, and
we of it, without waiting for a refresh), when the view asks for a refutation (at once),
and every ``refresh_interval(n)``. A token bucket caps everything but refutations and the
leave notice at this node's share of a cluster-wide budget (``GossipTuning.topic_rate / n``,
at most ``publish_rate``): every node handles every message on the topic, D times over, so
it is the whole topic's rate that costs CPU. With a fixed per-node rate a 20-node devnet in
trouble published a hundred digests and suspicions a second, the backlog delayed messages
past ``max_message_age`` and nobody recovered (2026-11-28).

Our own digest is applied to our view before it is published; GossipSub delivers our
publish to our own subscription at once (notes, "GossipSub"), and the handler skips
messages signed by us so nothing is applied twice. py-libp2p drops copies of our messages
that peers forward back before any validator runs.

Inbound. A topic validator decodes every message (``decode_gossip``, signer = the
libp2p-verified origin): oversized, undecodable, signer-mismatched, malformed or badly dated
messages are rejected there, so we neither deliver nor forward them. With an admission
policy (``mesh.admission``) it then rejects digests of peers the policy does not admit and
notices or leaves of non-members (NOT_ADMITTED), before any rate is spent. Last come the
rates: signers our view does not know share one bucket, members have one each and one
together (FLOODED beyond). Validators also run on our own publishes (notes, "GossipSub");
ours are let through, and the envelope they were signed in is kept for our snapshots
(``mesh.signed``). Each rejection is counted in ``chorus_gossip_rejected_total{reason}``
and logged once per (signer, reason). Replays pass the validator (they need the view's
state) and are counted when the view rejects them. An error in any loop or handler is
caught, counted in ``chorus_gossip_errors_total{where}`` and logged once per kind.

Ping failures. The node's LinkPinger (adapters/pinger.py) pings one connected peer every
half second, round-robin; an unanswered ping reaches the view as ``on_ping_failed`` (the
peer is suspected, and the suspicion is gossiped for others to confirm or the peer to
refute). The pinger ignores failures while this node is starved, by the same measure the
view uses. With P2PConfig.abort_connection_on_ping_failure (off by default) it also closes
the connection, so the view hears a disconnect too, and the peer is redialled (below).

Lost links. A peer whose last connection closed is redialled at its advertised address
(``/p2p/<its id>`` only) with doubling backoff until it is back, has left, or is forgotten.
Without it a peer whose connection was cut (a partition, a ping abort) stays cut off for
good: nothing else dials.

The pull protocol ``/chorus/health-view/1.0.0``: the client opens a stream, writes the one
byte ``PULL_REQUEST`` (version 1), and half-closes; the server answers with one
``ViewSnapshot`` (mesh/digest.proto) of at most ``MAX_SNAPSHOT_BYTES`` and closes. Both sides
bound what they read and how long they wait, and the server serves each peer at most
``serve_rate`` times a second (burst ``serve_burst``), one at a time. A snapshot carries
signed statements only, which the client verifies (``adapters.envelope``) before the view
applies them as if they came from the topic; with an admission policy, only members are
pulled from. We pull from every newly connected peer as soon as it shows its subscription
to the topic, so a new node converges at once (memberlist's push/pull on join), paced by
``pull_rate``: verifying a view costs CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import trio
from prometheus_client import CollectorRegistry

from adapters.election_check import ELECTION_INTERVAL, ELECTION_TIMEOUT, election_check
from adapters.envelope import EnvelopeCache
from adapters.gossip_inbound import InboundGossip
from adapters.gossip_metrics import GossipMetrics, log_transition
from adapters.gossip_publisher import GossipPublisher
from adapters.gossip_tuning import GossipTuning
from adapters.link_keeper import LinkKeeper
from adapters.suspect_checks import SuspectChecks
from adapters.view_pull import PULL_PROTOCOL, PullClient, PullServer
from mesh import cluster_json as shapes
from mesh.admission import AdmissionPolicy, MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.cluster_view import (
    Cause,
    ClusterView,
    Event,
    Outcome,
    PublishRefute,
    PublishSuspect,
    Transition,
)
from mesh.digest import (
    TOPIC,
    MemberState,
    Sequencer,
)
from mesh.election import ElectionHealth, ElectionTracker
from mesh.manager import CheckManager
from mesh.model import HealthCheck
from mesh.score_history import ScoreHistory

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's annotations for mypy.
    from trio_typing import TaskStatus

    from adapters.libp2p_host import P2PNode

__all__ = ["GossipService"]

logger = logging.getLogger(__name__)

_PeerEvent = tuple[Literal["connected", "disconnected", "ping_failed"], str]


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
        self._config = config
        self._tuning = tuning or GossipTuning()
        self._http_addr = http_addr
        self._starved = starved
        self._wall = wall_clock
        self._clock = clock
        self.self_id: str = node.peer_id
        self.view = ClusterView(self.self_id, config)
        self.election = election or ElectionTracker()
        self.score_history = ScoreHistory()  # the dashboard's hourly chart
        self.sequencer = Sequencer(self.self_id, math.floor(manager.start_time * 1000.0))
        self._metrics = GossipMetrics(
            registry, self.view, rejection_log_keys=self._tuning.rejection_log_keys
        )
        self.admission = admission if admission is not None else AdmissionPolicy()
        self.envelopes = EnvelopeCache()
        self._left = False
        self._publisher = GossipPublisher(
            node,
            manager,
            self.sequencer,
            self.view,
            config,
            self._tuning,
            self._metrics,
            handle=self._handle,
            http_addr=lambda: self.http_addr,
            certificate=certificate,
            left=lambda: self._left,
            clock=clock,
            wall_clock=wall_clock,
        )
        # Connection bookkeeping.
        self._events: trio.MemorySendChannel[_PeerEvent] | None = None
        self._connected: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._election_dirty = True
        self._running = False
        self._checks = SuspectChecks(
            node,
            self.view,
            self._tuning,
            self._metrics,
            connected=self._connected,
            handle=self._handle,
            left=lambda: self._left,
            clock=clock,
        )
        self._links = LinkKeeper(
            node,
            self.view,
            self._tuning,
            self.self_id,
            connected=self._connected,
            left=lambda: self._left,
            start=self._start,
            loop_failed=self._metrics.loop_failed,
            clock=clock,
        )
        self.meetings = self._links.meetings
        self._inbound = InboundGossip(
            self.self_id,
            self.view,
            config,
            self._tuning,
            self._metrics,
            self.admission,
            handle=self._handle,
            check_suspect=self._checks.check,
            running=lambda: self._running,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._pulls = PullClient(
            node,
            self.view,
            config,
            self._tuning,
            self._metrics,
            self.envelopes,
            self.admission,
            connected=self._connected,
            admitted=self._inbound.admitted,
            handle=self._handle,
            wake=self._publisher.wake,
            running=lambda: self._running,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._server = PullServer(
            self.view,
            self._tuning,
            self._metrics,
            running=lambda: self._running,
            clock=clock,
            wall_clock=wall_clock,
        )

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

        send, receive = trio.open_memory_channel[_PeerEvent](self._tuning.event_queue)
        self._events = send
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
            remove_listener = self._node.add_peer_listener(self._peer_connected, self._peer_lost)
            remove_ping_listener = self._node.add_ping_failure_listener(self._ping_failed)
            self._node.pinger.starved = self._starved
            self._running = True
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                # Peers dialled before we listened (bootstrap starts with the node).
                for peer in self._node.connected_peers():
                    self._peer_connected(peer)
                await self._publisher.publish_digest(self._clock())
                nursery.start_soon(self._event_loop, receive)
                nursery.start_soon(self._tick_loop)
                nursery.start_soon(self._publisher.run)
                nursery.start_soon(self._links.run)
                nursery.start_soon(self._checks.run)
                task_status.started()
        finally:
            # The subscription cannot be undone (LibP2PPubSub has no unsubscribe): the
            # handler checks _running instead.
            self._running = False
            self._nursery = None
            self._events = None
            send.close()
            for remove in (remove_listener, remove_ping_listener):
                if remove is not None:
                    remove()
            with contextlib.suppress(Exception):
                host.remove_stream_handler(TProtocol(PULL_PROTOCOL))

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

    def cluster_json(self, now: float | None = None) -> dict[str, Any]:
        """Body of GET /health/cluster; ``now`` on the view's clock (default: its clock)."""
        now = self._clock() if now is None else now
        return shapes.cluster_json(
            self.view,
            now=now,
            wall_now=self._wall(),
            history=self._tuning.history_in_json,
            scores=self.score_history.points(),
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
                self._election_dirty = True
                log_transition(event)
                if event.cause in (Cause.JOINED, Cause.RESTARTED) and not self._left:
                    self.meetings.offer(event.peer)
                if event.to_state is MemberState.DEAD and event.peer in self._connected:
                    self._links.drop_dead_link(event.peer)
                if event.to_state is MemberState.SUSPECT:
                    self._checks.check(event.peer)
            elif isinstance(event, PublishSuspect):
                self._publisher.queue_suspect(event.suspect, event.basis)
            elif isinstance(event, PublishRefute):
                # SWIM 4.2: answer with a higher incarnation, at once (no rate limit).
                self._publisher.refute(event.incarnation)

    def _start(self, task: Callable[[str], Awaitable[None]], peer: str) -> None:
        """``task(peer)`` in our nursery; nothing while we do not run."""
        if self._nursery is not None:
            self._nursery.start_soon(task, peer)

    # --- connection events ------------------------------------------------------------

    def _peer_connected(self, peer: str) -> None:
        self._push_event(("connected", peer))

    def _peer_lost(self, peer: str) -> None:
        self._push_event(("disconnected", peer))

    def _ping_failed(self, peer: str) -> None:
        self._push_event(("ping_failed", peer))

    def _push_event(self, event: _PeerEvent) -> None:
        # Runs on the network's task (P2PNode.add_peer_listener): never block it.
        if self._events is None:
            return
        try:
            self._events.send_nowait(event)
        except trio.WouldBlock:
            logger.warning("connection event %s %s dropped: queue full", *event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the service is stopping: its event loop has gone

    async def _event_loop(self, receive: trio.MemoryReceiveChannel[_PeerEvent]) -> None:
        async with receive:
            async for kind, peer in receive:
                now = self._clock()
                try:
                    if kind == "connected":
                        self._on_connected(peer, now)
                    elif kind == "ping_failed":
                        if peer in self._connected:
                            self._handle(self.view.on_ping_failed(peer, now), peer)
                    else:
                        self._on_disconnected(peer, now)
                except Exception as exc:  # one event must not end connection tracking
                    self._metrics.loop_failed("handle", exc)

    def _on_connected(self, peer: str, now: float) -> None:
        if peer in self._connected or peer == self.self_id:
            return
        self._connected.add(peer)
        self._links.back(peer)
        self._handle(self.view.on_connected(peer, now), peer)
        self._start(self._pulls.pull_from, peer)

    def _on_disconnected(self, peer: str, now: float) -> None:
        # P2PNode reports a peer's last connection only, as the view requires.
        if peer not in self._connected:
            return
        self._connected.discard(peer)
        self._publisher.forget(peer)
        self._handle(self.view.on_disconnected(peer, now), peer)
        self._checks.check(peer, urgent=True)
        self._links.lost(peer, now)

    # --- the view's timers ------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            now = self._clock()
            deadline: float | None = None
            try:
                self._apply(self.view.set_starved(self._starved(), now))
                self._apply(self.view.tick(now))
                self.score_history.observe(now, lambda: self.view.health().score)
                if self._election_dirty:
                    self._election_dirty = False
                    self.election.observe(self.view.members().values(), self._wall())
                deadline = self.view.next_deadline()
            except Exception as exc:  # the timers must outlive any state a peer caused
                self._metrics.loop_failed("tick", exc)
            wake = now + self._tuning.tick_max
            if deadline is not None:
                wake = min(wake, deadline)
            # A deadline already due was just handled; 10 ms keeps a busy loop impossible.
            await trio.sleep(max(0.01, wake - self._clock()))
