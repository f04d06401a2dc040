"""GossipSub as py-libp2p 0.8 runs it for the health topic, one router per node.

Modelled (libp2p/pubsub/gossipsub.py): a mesh of ``D`` peers kept between ``D_lo`` and
``D_hi`` at every heartbeat; a new message is validated before it is delivered or
forwarded, and forwarded to every mesh peer but the one it came from; duplicates are
dropped by the seen cache before validation; at each heartbeat the ids of the last
``gossip_window`` heartbeats' messages are offered (IHAVE) to
``max(6, 0.25 * non-mesh peers)`` other connected peers (``_get_adaptive_gossip_peers_count``
with adaptive gossip off, as P2PConfig sets it), which ask (IWANT) for those they lack; a
subscriber is grafted at once while our mesh is below ``D_lo``, and is sent the cached
messages of the last ``gossip_window`` heartbeats (py-libp2p's replay on subscription),
in one write: one delay, and one draw of loss, for all of them.
Our own suspicion notices, refutations and leave notices also go to every connected peer
outside the mesh, as the node's ``adapters.flood_publish`` sends them.
Left out: peer scoring, PRUNE backoff and peer exchange (off in P2PConfig), IDONTWANT (1.2
is not offered), fanout (every node is subscribed). GRAFT is accepted below ``D_hi``,
else answered by PRUNE.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from adapters.flood_publish import MAX_FLOOD_PEERS
from adapters.p2p_config import P2PConfig

__all__ = ["GossipParams", "Packet", "Router", "Wire"]

MSG_ID_BYTES = 46  # py-libp2p's message id: the origin's peer id bytes and an 8-byte seqno
CONTROL_BYTES = 60  # a GRAFT or PRUNE with its topic


@dataclass(frozen=True, slots=True)
class GossipParams:
    """Defaults are the production node's (``adapters.p2p_config.P2PConfig``)."""

    degree: int = P2PConfig.gossip_degree
    degree_low: int = P2PConfig.gossip_degree_low
    degree_high: int = P2PConfig.gossip_degree_high
    heartbeat: float = P2PConfig.gossip_heartbeat_interval
    gossip_window: int = 3  # py-libp2p GossipSub defaults
    gossip_history: int = 5
    lazy_min: int = 6
    lazy_factor: float = 0.25
    seen_ttl: float = 120.0  # py-libp2p's seen-message cache keeps ids this long


@dataclass(frozen=True, slots=True)
class Packet:
    """One pubsub message: ``raw`` is the signed envelope as the wire carries it."""

    mid: int
    origin: int
    raw: bytes


class Wire(Protocol):
    """How a router reaches its peers' routers (the simulation's node table)."""

    def send(
        self,
        src: int,
        dst: int,
        kind: str,
        size: int,
        action: Callable[[Router], None],
        count: int = 1,
    ) -> None:
        """``count`` messages of ``size`` payload bytes in all, in one write."""

    def now(self) -> float: ...


class Router:
    def __init__(
        self,
        index: int,
        wire: Wire,
        params: GossipParams,
        rng: random.Random,
        validate: Callable[[Packet], bool],
        mesh_added: Callable[[int], None],
    ) -> None:
        self.index = index
        self.wire = wire
        self.params = params
        self.rng = rng
        self._validate = validate
        self._mesh_added = mesh_added
        self.connected: set[int] = set()
        self.mesh: set[int] = set()
        self._seen: dict[int, float] = {}  # mid -> when it expires
        self._seen_order: deque[tuple[float, int]] = deque()
        self._cache: dict[int, Packet] = {}
        self._history: deque[list[int]] = deque([[]], maxlen=params.gossip_history)
        self.duplicates = 0

    # --- peers ---------------------------------------------------------------------------

    def peer_connected(self, peer: int) -> None:
        self.connected.add(peer)
        # py-libp2p's event-driven first fill (GossipSub.on_peer_subscribed): a subscriber
        # is grafted at once only below D_lo; the heartbeat tops the mesh up to D.
        if len(self.mesh) < self.params.degree_low:
            self._graft(peer)
        # Pubsub._replay_recent_messages: a new subscriber is sent what our message cache
        # holds of the last gossip_window heartbeats, so what was published before the
        # connection (a joiner's first digest) still reaches it.
        packets = [self._cache[mid] for mid in self._window()]
        if packets:
            # One write on the new stream: they arrive together and in order, as one event
            # (a 1,000-node join replays millions of messages; one event each made its run
            # take hours).
            sender = self.index

            def receive_all(router: Router) -> None:
                for packet in packets:
                    router.receive(packet, sender)

            size = sum(len(packet.raw) for packet in packets)
            self.wire.send(sender, peer, "gossip", size, receive_all, len(packets))

    def peer_lost(self, peer: int) -> None:
        self.connected.discard(peer)
        self.mesh.discard(peer)

    def _graft(self, peer: int) -> None:
        self.mesh.add(peer)
        self._mesh_added(peer)
        self.wire.send(
            self.index, peer, "control", CONTROL_BYTES, lambda r: r._on_graft(self.index)
        )

    def _on_graft(self, peer: int) -> None:
        if peer not in self.connected:
            return
        if len(self.mesh) >= self.params.degree_high and peer not in self.mesh:
            self.wire.send(
                self.index, peer, "control", CONTROL_BYTES, lambda r: r._on_prune(self.index)
            )
            return
        if peer not in self.mesh:
            self.mesh.add(peer)
            self._mesh_added(peer)

    def _on_prune(self, peer: int) -> None:
        self.mesh.discard(peer)

    # --- messages ------------------------------------------------------------------------

    def publish(self, packet: Packet, *, flood: bool = False) -> None:
        """``flood``: also to connected peers outside the mesh, at most ``MAX_FLOOD_PEERS``
        of them (adapters/flood_publish.py: our suspicion notices and refutations)."""
        self._remember(packet)
        targets = self.mesh or set(
            self.rng.sample(sorted(self.connected), min(len(self.connected), self.params.degree))
        )
        if flood:
            spare = sorted(self.connected - targets)
            targets = targets | set(self.rng.sample(spare, min(len(spare), MAX_FLOOD_PEERS)))
        for peer in sorted(targets):
            self._send_packet(peer, packet)

    def _send_packet(self, peer: int, packet: Packet) -> None:
        self.wire.send(
            self.index, peer, "gossip", len(packet.raw), lambda r: r.receive(packet, self.index)
        )

    def receive(self, packet: Packet, sender: int) -> None:
        if packet.mid in self._seen:
            self.duplicates += 1
            return
        self._remember(packet)
        if not self._validate(packet):
            return
        for peer in sorted(self.mesh):
            if peer != sender and peer != packet.origin:
                self._send_packet(peer, packet)

    def _remember(self, packet: Packet) -> None:
        expires = self.wire.now() + self.params.seen_ttl
        self._seen[packet.mid] = expires
        self._seen_order.append((expires, packet.mid))
        self._cache[packet.mid] = packet
        self._history[-1].append(packet.mid)

    # --- heartbeat -----------------------------------------------------------------------

    def heartbeat(self) -> None:
        p = self.params
        self.mesh &= self.connected
        if len(self.mesh) < p.degree_low:
            spare = sorted(self.connected - self.mesh)
            for peer in self.rng.sample(spare, min(len(spare), p.degree - len(self.mesh))):
                self._graft(peer)
        elif len(self.mesh) > p.degree_high:
            for peer in self.rng.sample(sorted(self.mesh), len(self.mesh) - p.degree):
                self.mesh.discard(peer)
                self.wire.send(
                    self.index, peer, "control", CONTROL_BYTES, lambda r: r._on_prune(self.index)
                )
        self._emit_gossip()
        # Shift the message cache; ids leave the seen cache after seen_ttl.
        for mid in self._history[0] if len(self._history) == p.gossip_history else ():
            self._cache.pop(mid, None)
        self._history.append([])
        now = self.wire.now()
        while self._seen_order and self._seen_order[0][0] <= now:
            _, mid = self._seen_order.popleft()
            if self._seen.get(mid, now + 1) <= now:
                del self._seen[mid]

    def _emit_gossip(self) -> None:
        p = self.params
        window = self._window()
        if not window:
            return
        others = sorted(self.connected - self.mesh)
        count = max(p.lazy_min, int(len(others) * p.lazy_factor))
        ids = tuple(window)
        for peer in self.rng.sample(others, min(count, len(others))):
            size = 8 + MSG_ID_BYTES * len(ids)
            self.wire.send(self.index, peer, "ihave", size, lambda r: r._on_ihave(ids, self.index))

    def _window(self) -> list[int]:
        """Ids of the cached messages of the last ``gossip_window`` heartbeats."""
        recent = list(self._history)[-self.params.gossip_window :]
        return [mid for ids in recent for mid in ids if mid in self._cache]

    def _on_ihave(self, ids: tuple[int, ...], peer: int) -> None:
        wanted = tuple(mid for mid in ids if mid not in self._seen)
        if wanted and peer in self.connected:
            size = 8 + MSG_ID_BYTES * len(wanted)
            self.wire.send(
                self.index, peer, "iwant", size, lambda r: r._on_iwant(wanted, self.index)
            )

    def _on_iwant(self, ids: tuple[int, ...], peer: int) -> None:
        for mid in ids:
            packet = self._cache.get(mid)
            if packet is not None and peer in self.connected:
                self._send_packet(peer, packet)
