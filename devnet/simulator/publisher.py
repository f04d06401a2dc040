"""What a node publishes and when: the adapter's own ``PublishDecisions`` under a virtual
clock.

The decisions (a refutation at once, at most one per ``refute_interval``; our digest when
a peer is new to our mesh or ``ClusterConfig.publish_due`` says so, for a token of the
budget ``publish_budget(tuning, n)``; then queued suspicions, a token each) are
``adapters.publish_decisions.PublishDecisions``, the very class the gossip service uses.
This module does what ``adapters.gossip_publisher`` does around it, minus trio: the
adapter polls every ``publish_poll``; here the timer is set to the next moment anything
can be due, which is the same moment, and a change of our mesh wakes it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from adapters.publish_decisions import PublishDecisions, Said
from devnet.simulator.events import Timer
from devnet.simulator.kernel import NodeSide
from mesh import component_table
from mesh.cluster_events import PublishSuspect
from mesh.digest import encode_gossip
from mesh.messages import HealthDigest
from mesh.model import Status
from mesh.wire_level import COMPACT

__all__ = ["COMPONENTS", "URGENT_KINDS", "Publisher"]

# What GossipPublisher floods to every topic peer (adapters/flood_publish.py).
URGENT_KINDS = frozenset({"suspect", "witness", "refutation", "leave"})
# A healthy node's digest carries the components its built-in checks feed, as the devnet's
# digests do: every table entry but the database (a check an application adds).
COMPONENTS = {name: 1.0 for name in sorted(component_table.TABLE) if name != "database"}


class Publisher:
    def __init__(self, node: NodeSide) -> None:
        self.node = node
        self.decisions = PublishDecisions(node.tuning, node.config)
        self.stopped = False
        # What we published, by kind: digest (first, change or refresh), refutation,
        # suspect, witness (a suspect notice saying our dial was refused), leave.
        self.published: Counter[str] = Counter()
        self._timer: Timer | None = None
        # A healthy node's statement about itself never changes: refreshes carry it.
        self._said: Said | None = None

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
        if not self.stopped and self.decisions.queue_suspect(event) == "queued":
            self.wake()

    def refute(self, incarnation: int) -> None:
        assert self.node.sequencer is not None
        self.node.sequencer.refute(incarnation)
        self.decisions.refute()
        self.wake()

    def stop(self) -> None:
        """The leave: nothing more goes out but the leave notice itself."""
        self.stopped = True
        self.decisions.stop()

    @property
    def last_sent(self) -> float | None:
        return self.decisions.last_sent

    @last_sent.setter
    def last_sent(self, value: float) -> None:
        # A warm start's refresh phase: a digest said as if sent at ``value``.
        self.decisions.sent(value, self.said())

    def due(self) -> None:
        self._timer = None
        node = self.node
        if self.stopped or node.sequencer is None:
            return
        now = node.now
        n = node.view.live_count()
        decisions = self.decisions
        if decisions.digest_due(now, n, self.mesh, self.said):
            self.publish_digest()
        while not self.stopped:
            event = decisions.next_suspect(node.now)
            if event is None:
                break
            notice = node.sequencer.suspect(
                event.suspect, event.basis, node.wall, refused=event.refused
            )
            self.send(encode_gossip(notice), kind="witness" if event.refused else "suspect")
        if decisions.refuting or decisions.announce or decisions.suspects:
            delay = node.tuning.publish_poll  # waiting for a token or refute_interval
        else:
            assert decisions.last_sent is not None
            refresh = decisions.last_sent + node.config.refresh_interval(n) - now
            delay = max(node.tuning.publish_poll, refresh)
        self.schedule(delay)

    def mesh(self) -> set[str]:
        """Our GossipSub mesh, as peer ids (``GossipPublisher.mesh_peers``)."""
        return {self.node.cluster.peer_id(peer) for peer in self.node.router.mesh}

    def said(self) -> Said:
        """What a healthy node says, with the view's local health (a starved node's)."""
        said = self._base_said()
        health = self.node.view.local_health
        if said.local_health == health:
            return said
        return dataclasses.replace(said, local_health=health)

    def _base_said(self) -> Said:
        if self._said is None:
            node = self.node
            if node.cluster.one_host:  # the devnet: every node on 127.0.0.1, a port each
                host, port = "127.0.0.1", 9000 + node.index
            else:
                host, port = (
                    f"10.{node.index >> 16 & 255}.{node.index >> 8 & 255}.{node.index & 255}",
                    9000,
                )
            self._said = Said(
                Status.HEALTHY,
                0.97,
                dict(COMPONENTS),
                f"http://{host}:8080",
                (f"/ip4/{host}/tcp/{port}/p2p/{node.peer_id}",),
            )
        return self._said

    def publish_digest(self) -> None:
        now = self.node.now
        digest = self.next_digest()
        kind = "refutation" if self.decisions.refuting else "digest"
        self.decisions.sent(now, self.said())
        self.node.handle(self.node.view.on_gossip(digest, now))
        compact = self.node.view.wire_level_floor() >= COMPACT
        self.send(encode_gossip(digest, compact=compact), kind, digest)

    def next_digest(self) -> HealthDigest:
        """Our next digest (GossipPublisher's), for a healthy node: what ``said`` says."""
        node = self.node
        assert node.sequencer is not None
        said = self.said()
        return node.sequencer.digest(
            node.wall,
            status=said.status,
            score=said.score,
            components=said.components,
            version="0.9.0",
            http_addr=said.http_addr,
            p2p_addrs=said.p2p_addrs,
            local_health=said.local_health,
        )

    def send(self, data: bytes, kind: str, digest: HealthDigest | None = None) -> None:
        node = self.node
        raw = node.ident.seal(data)
        if digest is not None:
            node.view.record_statement(digest, raw)  # what our validator keeps of our own
        self.published[kind] += 1
        flood = kind in URGENT_KINDS
        node.router.publish(node.cluster.packet(node.index, raw), flood=flood)
