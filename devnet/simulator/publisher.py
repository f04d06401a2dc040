"""What a node publishes and when: ``GossipService._publish_due`` with its publish budget.

The same decisions in the same order as the adapter: a refutation at once (at most one per
``refute_interval``, no budget); else our digest when ``ClusterConfig.publish_due`` says a
refresh is due or a new mesh peer should hear of us, if the token bucket sized by
``publish_budget(tuning, n)`` (``topic_rate / n`` a second per node) has a token; then
queued suspicions, each for a token. The adapter polls every ``publish_poll``; here the
timer is set to the next moment anything can be due, which is the same moment.
"""

from __future__ import annotations

import math
from collections import deque

from adapters.gossip_tuning import publish_budget
from adapters.node_checks import BUILT_IN_CHECKS
from devnet.simulator.events import Timer
from devnet.simulator.kernel import NodeSide
from mesh.cluster_events import PublishSuspect
from mesh.digest import encode_gossip
from mesh.messages import HealthDigest
from mesh.model import Status
from probes.rate_limit import TokenBucket

__all__ = ["COMPONENTS", "Publisher"]

# A healthy node's digest carries one component per check the node registers by itself
# (adapters.node_checks.BUILT_IN_CHECKS, 12 today), as the devnet's digests do.
COMPONENTS = {name: 1.0 for name in sorted(BUILT_IN_CHECKS)}


class Publisher:
    def __init__(self, node: NodeSide) -> None:
        self.node = node
        tuning = node.tuning
        self.bucket = TokenBucket(tuning.publish_rate, tuning.publish_burst, 0.0)
        self.last_sent: float | None = None
        self.last_refute = -math.inf
        self.refuting = False
        self.announce = False
        self.suspects: deque[PublishSuspect] = deque()
        self.stopped = False
        self.published = 0  # digests and notices, refutations included
        self._timer: Timer | None = None

    def wake(self) -> None:
        timer = self._timer
        if timer is not None and not timer.cancelled and timer.at <= self.node.now:
            return
        if timer is not None:
            timer.cancel()
        self._timer = self.node.later(0.0, self.due)

    def schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.node.later(delay, self.due)

    def queue_suspect(self, event: PublishSuspect) -> None:
        if self.stopped or event in self.suspects:
            return
        if len(self.suspects) < self.node.tuning.max_pending_suspects:
            self.suspects.append(event)
            self.wake()

    def refute(self, incarnation: int) -> None:
        assert self.node.sequencer is not None
        self.node.sequencer.refute(incarnation)
        self.refuting = True
        self.wake()

    def stop(self) -> None:
        """The leave: nothing more goes out but the leave notice itself."""
        self.stopped = True
        self.suspects.clear()
        self.refuting = self.announce = False

    def due(self) -> None:
        self._timer = None
        node = self.node
        if self.stopped or node.sequencer is None:
            return
        now = node.now
        n = node.view.live_count()
        self.bucket.rate, self.bucket.burst = publish_budget(node.tuning, n)
        if self.refuting and now - self.last_refute >= node.tuning.refute_interval:
            self.last_refute = now
            self.publish_digest()
        elif self.refuting:
            pass  # the refutation waits out refute_interval
        elif (
            self.announce
            or node.config.publish_due(now=now, last_sent=self.last_sent, changed=False, n=n)
        ) and self.bucket.take(now):
            self.publish_digest()
        while self.suspects and self.bucket.take(now):
            event = self.suspects.popleft()
            notice = node.sequencer.suspect(
                event.suspect, event.basis, node.wall, refused=event.refused
            )
            self.send(encode_gossip(notice))
        if self.refuting or self.announce or self.suspects:
            delay = node.tuning.publish_poll  # waiting for a token or refute_interval
        else:
            assert self.last_sent is not None
            refresh = self.last_sent + node.config.refresh_interval(n) - now
            delay = max(node.tuning.publish_poll, refresh)
        self.schedule(delay)

    def publish_digest(self) -> None:
        self.refuting = self.announce = False
        self.last_sent = self.node.now
        digest = self.next_digest()
        self.node.handle(self.node.view.on_gossip(digest, self.node.now))
        self.send(encode_gossip(digest), digest)

    def next_digest(self) -> HealthDigest:
        """Our next digest (GossipService._encoded_digest), for a healthy node."""
        node = self.node
        assert node.sequencer is not None
        if node.cluster.one_host:  # the devnet: every node on 127.0.0.1, a port each
            host, port = "127.0.0.1", 9000 + node.index
        else:
            host, port = (
                f"10.{node.index >> 16 & 255}.{node.index >> 8 & 255}.{node.index & 255}",
                9000,
            )
        return node.sequencer.digest(
            node.wall,
            status=Status.HEALTHY,
            score=0.97,
            components=COMPONENTS,
            version="0.9.0",
            http_addr=f"http://{host}:8080",
            p2p_addrs=(f"/ip4/{host}/tcp/{port}/p2p/{node.peer_id}",),
        )

    def send(self, data: bytes, digest: HealthDigest | None = None) -> None:
        node = self.node
        raw = node.ident.seal(data)
        if digest is not None:
            node.view.record_statement(digest, raw)  # what our validator keeps of our own
        self.published += 1
        node.router.publish(node.cluster.packet(node.index, raw))
