"""Our side of the topic: our digest and our notices, built, signed and published.

``GossipPublisher`` polls our status and score every ``publish_poll`` (or at once when
woken: a refutation, a suspicion queued, a new address) and publishes what
``PublishDecisions`` (``adapters.publish_decisions``) says is due: our digest when its
status, score, components or addresses changed (at most once per
``min_publish_interval``), when a peer we never announced ourselves to joins our GossipSub
mesh (so a joiner hears of us, and we of it, without waiting for a refresh), when the view
asks for a refutation (at once), and every ``refresh_interval(n)``; then the suspicions
the view asked us to gossip. All but refutations and the leave notice come out of the
publish budget (``adapters.gossip_tuning``).

Our own digest is applied to our view before it is published; GossipSub delivers our
publish to our own subscription at once (notes, "GossipSub"), and the handler skips
messages signed by us so nothing is applied twice. py-libp2p drops copies of our messages
that peers forward back before any validator runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from adapters.flood_publish import FloodingGossipSub, flooding
from adapters.gossip_metrics import GossipMetrics
from adapters.gossip_tuning import GossipTuning
from adapters.publish_decisions import PublishDecisions, Said, fraction
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Outcome, PublishSuspect
from mesh.cluster_view import ClusterView
from mesh.digest import TOPIC, EncodeError, encode_gossip
from mesh.manager import CheckManager
from mesh.messages import HealthDigest
from mesh.model import Status
from mesh.sequencer import Sequencer
from mesh.wake_grid import grid_after
from mesh.wire_bounds import MAX_COMPONENTS, MAX_P2P_ADDRS
from mesh.wire_level import COMPACT

if TYPE_CHECKING:
    from adapters.p2p_node import P2PNode

__all__ = ["GossipPublisher"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")


class GossipPublisher:
    """Publishes for one node; ``run`` is its loop. ``handle`` carries out what the view
    makes of our own digest; ``left`` says we have left (nothing more goes out)."""

    def __init__(
        self,
        node: P2PNode,
        manager: CheckManager,
        sequencer: Sequencer,
        view: ClusterView,
        config: ClusterConfig,
        tuning: GossipTuning,
        metrics: GossipMetrics,
        *,
        handle: Callable[[Outcome, str], None],
        http_addr: Callable[[], str],
        certificate: MemberCertificate | None,
        left: Callable[[], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._node = node
        router = getattr(getattr(node, "guarded_pubsub", None), "router", None)
        if isinstance(router, FloodingGossipSub):
            router.member = view.knows  # our members first among the peers flooded
        self._manager = manager
        self._sequencer = sequencer
        self._view = view
        self._tuning = tuning
        self._metrics = metrics
        self._handle = handle
        self._http_addr = http_addr
        self._certificate = certificate
        self._left = left
        self._clock = clock
        self._wall = wall_clock
        self.decisions = PublishDecisions(tuning, config)
        self._wake = trio.Event()
        # Our status and scores change only with the manager's generation (a result, a
        # check registered or removed, stopping); the poll reads them four times a second
        # and a result comes every few seconds (recomputing them was about 3 % of an idle
        # node's CPU).
        self._scores_generation: int | None = None
        self._scores: tuple[Status, float, dict[str, float]] = (Status.STARTING, 0.0, {})

    def wake(self) -> None:
        """Poll now rather than at the next ``publish_poll``."""
        self._wake.set()

    def refute(self, incarnation: int) -> None:
        """Raise our incarnation above ``incarnation`` and publish a digest carrying it."""
        self._sequencer.refute(incarnation)
        self.decisions.refute()
        self._wake.set()

    def forget(self, peer: str) -> None:
        """``peer``'s last connection closed: announce ourselves again when it is back."""
        self.decisions.forget(peer)

    def queue_suspect(self, suspicion: PublishSuspect) -> None:
        if self._left():
            return
        queued = self.decisions.queue_suspect(suspicion)
        if queued == "full":
            logger.warning("suspicion of %s not published: too many pending", suspicion.suspect)
        elif queued == "queued":
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            try:
                await self._publish_due()
            except Exception as exc:  # nothing a peer made the view ask for may end us
                self._publish_failed(exc)
            poll = grid_after(trio.current_time(), self._tuning.publish_poll)
            with trio.move_on_at(poll):  # on the node's wake grid (mesh/wake_grid.py)
                await self._wake.wait()

    async def leave(self) -> None:
        """Publish our leave notice and give it a moment to go out (``flush``); the caller
        has made ``left`` true, so nothing else is published from now on."""
        self.decisions.stop()
        notice = self._sequencer.leave(self._wall())
        self._handle(self._view.on_gossip(notice, self._clock()), self._sequencer.node_id)
        await self._send(encode_gossip(notice), urgent=True)
        await self._flush()

    def _publish_failed(self, exc: Exception) -> None:
        self.decisions.refute_failed()
        self._metrics.loop_failed("publish", exc)

    async def _publish_due(self) -> None:
        if self._left():
            return
        now = self._clock()
        n = self._view.live_count()
        refuting = self.decisions.refuting
        if self.decisions.digest_due(now, n, self.mesh_peers, self._said):
            await self.publish_digest(now, urgent=refuting)
        while not self._left():
            due = self.decisions.next_suspect(self._clock())
            if due is None:
                break
            notice = self._sequencer.suspect(
                due.suspect, due.basis, self._wall(), refused=due.refused
            )
            await self._send(encode_gossip(notice), urgent=True)

    def mesh_peers(self) -> set[str]:
        """Our GossipSub mesh on the topic, as peer ids."""
        router = getattr(self._node.guarded_pubsub, "router", None)
        mesh: Mapping[str, Iterable[Any]] = getattr(router, "mesh", {}) or {}
        return {peer.to_base58() for peer in mesh.get(TOPIC, ())}

    def _status_and_scores(self) -> tuple[Status, float, dict[str, float]]:
        manager = self._manager
        if manager.generation != self._scores_generation:
            status, _ = manager.decide()
            self._scores = (status, manager.system_score(), dict(manager.component_scores()))
            self._scores_generation = manager.generation
        return self._scores

    def _said(self) -> Said:
        status, score, components = self._status_and_scores()
        return Said(
            status,
            score,
            components,
            self._http_addr(),
            tuple(self._p2p_addrs()),
            self._view.local_health,
        )

    def _p2p_addrs(self) -> list[str]:
        return self._node.listen_addrs[:MAX_P2P_ADDRS]

    async def publish_digest(self, now: float, *, urgent: bool = False) -> None:
        """Publish our digest now; ``urgent`` (a refutation) floods it to every topic peer."""
        if self._left():
            return
        said = self._said()
        digest, data = self._encoded_digest()
        self.decisions.sent(now, said)
        # Our own digest feeds our view first (the view needs us as a member).
        self._handle(self._view.on_gossip(digest, now), self._sequencer.node_id)
        await self._send(data, urgent=urgent)

    def _encoded_digest(self) -> tuple[HealthDigest, bytes]:
        # The same values the publish decision judged (``_said``), so that what we note as
        # published is what peers received.
        status, score, scores = self._status_and_scores()
        components = dict(
            sorted((name, fraction(value)) for name, value in scores.items())[:MAX_COMPONENTS]
        )
        fields: dict[str, Any] = {
            "status": status,
            "score": fraction(score),
            "components": components,
            "version": self._manager.version,
            "http_addr": self._http_addr(),
            "p2p_addrs": self._p2p_addrs(),
            "certificate": self._certificate,
            "local_health": self._view.local_health,
        }
        # A component name or address peers would reject must not silence us: fall back
        # to a digest without the offending optional fields.
        compact = self._view.wire_level_floor() >= COMPACT
        for drop in ((), ("components",), ("components", "version", "http_addr", "p2p_addrs")):
            trimmed = {k: v for k, v in fields.items() if k not in drop}
            digest = self._sequencer.digest(self._wall(), **trimmed)
            try:
                return digest, encode_gossip(digest, compact=compact)
            except EncodeError as exc:
                logger.warning("digest not publishable as is (%s); trimming it", exc)
        raise AssertionError("a digest without optional fields always encodes")

    async def _send(self, data: bytes, *, urgent: bool = False) -> None:
        """Publish ``data`` on the topic; a failure is logged, not raised. ``urgent``: to
        every topic peer, not only our mesh (``adapters.flood_publish``)."""
        try:
            with flooding() if urgent else contextlib.nullcontext():
                await self._node.pubsub.publish(TOPIC, data)
        except Exception as exc:  # shutting down, or py-libp2p trouble: the next one will do
            logger.info("health gossip publish failed: %r", exc)
            return
        self._metrics.published.inc()
        self._metrics.bytes.labels(direction="out").inc(len(data))

    async def _flush(self) -> None:
        """Wait for py-libp2p's outbound queues to empty (at most ``leave_flush_timeout``),
        then ``leave_flush_grace`` for the write of the frame last taken off a queue."""
        queues: Mapping[Any, Any] = getattr(self._node.guarded_pubsub, "peer_queues", {}) or {}
        with trio.move_on_after(self._tuning.leave_flush_timeout):
            # py-libp2p's per-peer RpcQueue (pubsub/rpc_queue.py) has a length; its sending
            # task pops a frame and then writes it. Polling: there is no event to wait on.
            while any(len(queue) for queue in list(queues.values())):  # noqa: ASYNC110
                await trio.sleep(0.005)
            await trio.sleep(self._tuning.leave_flush_grace)
