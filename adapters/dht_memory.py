"""An in-memory fake of ``probes.ports.DHT``: many nodes' stores in one process.

Same contract as :class:`adapters.dht.LibP2PDHT`, with peers that can be made corrupt,
silent or unreachable, for tests and simulations that need no sockets.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

import trio

from adapters.dht import DEFAULT_MAX_VALUE_SIZE, HealthRecordValidator
from probes.ports import check_key

__all__ = ["InMemoryDHT", "InMemoryDHTNetwork", "PeerBehaviour"]


class PeerBehaviour(enum.Enum):
    """How a fake peer answers reads of its store."""

    HONEST = "honest"
    CORRUPT = "corrupt"  # returns every value with all bits flipped
    SILENT = "silent"  # has nothing / does not answer


@dataclass
class _FakePeer:
    store: dict[str, bytes] = field(default_factory=dict)
    behaviour: PeerBehaviour = PeerBehaviour.HONEST
    reachable: bool = True


class InMemoryDHTNetwork:
    """A shared set of fake DHT stores. ``put_value`` gives every reachable node a copy
    (k >= N), as real py-libp2p with k = 20 does while N <= 20 (notes); ``put_at_closest``
    stores at the first peers of a stable per-key order, a stand-in for XOR distance.
    """

    def __init__(self, max_value_size: int = DEFAULT_MAX_VALUE_SIZE) -> None:
        self.validator = HealthRecordValidator(max_value_size)
        self._peers: dict[str, _FakePeer] = {}

    def attach(self, peer_id: str) -> InMemoryDHT:
        if peer_id in self._peers:
            raise ValueError(f"peer {peer_id} is already attached")
        self._peers[peer_id] = _FakePeer()
        return InMemoryDHT(self, peer_id)

    def set_behaviour(self, peer_id: str, behaviour: PeerBehaviour) -> None:
        self._peers[peer_id].behaviour = behaviour

    def set_reachable(self, peer_id: str, reachable: bool) -> None:
        """An unreachable peer neither receives puts nor answers gets (it keeps its store)."""
        self._peers[peer_id].reachable = reachable

    def store_of(self, peer_id: str) -> dict[str, bytes]:
        """The peer's raw store, for assertions and for planting values."""
        return self._peers[peer_id].store

    def _answer(self, peer_id: str, key: str) -> bytes | None:
        peer = self._peers.get(peer_id)
        if peer is None or not peer.reachable or peer.behaviour is PeerBehaviour.SILENT:
            return None
        value = peer.store.get(key)
        if value is not None and peer.behaviour is PeerBehaviour.CORRUPT:
            return bytes(b ^ 0xFF for b in value)
        return value

    def _others(self, peer_id: str) -> list[str]:
        return [p for p, peer in self._peers.items() if p != peer_id and peer.reachable]


class InMemoryDHT:
    """One node's view of an :class:`InMemoryDHTNetwork`; same contract as LibP2PDHT."""

    def __init__(self, network: InMemoryDHTNetwork, peer_id: str) -> None:
        self._net = network
        self.peer_id = peer_id

    async def put_value(self, key: str, value: bytes) -> None:
        self._net.validator.validate(key, value)
        await trio.lowlevel.checkpoint()
        self._net.store_of(self.peer_id)[key] = value
        if not self._net._peers[self.peer_id].reachable:
            return
        for other in self._net._others(self.peer_id):
            self._net.store_of(other)[key] = value

    async def put_at_closest(self, key: str, value: bytes, replicas: int) -> list[str]:
        self._net.validator.validate(key, value)
        await trio.lowlevel.checkpoint()
        if not self._net._peers[self.peer_id].reachable:
            return []
        # A stand-in for XOR distance: a stable order per key that differs between keys.
        closest = sorted(
            self._net._others(self.peer_id),
            key=lambda peer: hashlib.sha256(f"{key}|{peer}".encode()).digest(),
        )[:replicas]
        stored = []
        for peer in closest:
            if self._net._peers[peer].behaviour is not PeerBehaviour.SILENT:
                self._net.store_of(peer)[key] = value
                stored.append(peer)
        return stored

    async def get_value(self, key: str) -> bytes | None:
        check_key(key)
        await trio.lowlevel.checkpoint()
        local = self._net.store_of(self.peer_id).get(key)
        if local is not None:
            return local
        if not self._net._peers[self.peer_id].reachable:
            return None
        for other in self._net._others(self.peer_id):
            value = self._net._answer(other, key)
            if value is not None and len(value) <= self._net.validator.max_value_size:
                return value
        return None

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        check_key(key)
        await trio.lowlevel.checkpoint()
        if peer_id == self.peer_id:
            return self._net.store_of(self.peer_id).get(key)
        if not self._net._peers[self.peer_id].reachable:
            return None
        return self._net._answer(peer_id, key)

    def local_peers(self) -> list[str]:
        if not self._net._peers[self.peer_id].reachable:
            return []
        return self._net._others(self.peer_id)
