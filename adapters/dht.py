"""The DHT edge: one small interface, a py-libp2p implementation and an in-memory fake.

Keys live in one namespace, ``/chorus-health/<32 lowercase hex>`` (47 bytes). Keys longer
than 50 bytes that are not multihashes make remote FIND_NODE fail and lookups fall back to
the local table silently (py-libp2p notes, "Kademlia"), so the key format is enforced here,
on both the put and the get side.

Every node registers :class:`HealthRecordValidator` for the namespace: without one a
py-libp2p node stores whatever it is sent, of any size (notes, "Hostile input").
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import trio
from libp2p.peer.id import ID
from libp2p.records.validator import Validator

if TYPE_CHECKING:
    from libp2p.kad_dht.kad_dht import KadDHT

__all__ = [
    "DEFAULT_MAX_VALUE_SIZE",
    "DHT",
    "NAMESPACE",
    "DHTError",
    "HealthRecordValidator",
    "InMemoryDHT",
    "InMemoryDHTNetwork",
    "InvalidRecord",
    "LibP2PDHT",
    "PeerBehaviour",
    "health_key",
]

logger = logging.getLogger(__name__)

NAMESPACE = "chorus-health"
# A health digest is a few hundred bytes; 4 KiB leaves room and still bounds what a
# hostile peer can make us store per key.
DEFAULT_MAX_VALUE_SIZE = 4 * 1024
_KEY_RE = re.compile(r"^/chorus-health/[0-9a-f]{32}$")


class DHTError(Exception):
    """A DHT operation failed for a reason the caller should see (not "value not found")."""


class InvalidRecord(DHTError, ValueError):
    """A key is not ``/chorus-health/<32 hex>`` or a value exceeds the size limit."""


def health_key(key_id: str) -> str:
    """Build a DHT key from 32 lowercase hex characters (e.g. ``digest.hex()[:32]``)."""
    key = f"/{NAMESPACE}/{key_id}"
    check_key(key)
    return key


def check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise InvalidRecord(
            f"DHT key {key!r} is not /{NAMESPACE}/<32 lowercase hex chars>; longer keys "
            "break remote FIND_NODE in py-libp2p 0.8.1"
        )


class HealthRecordValidator(Validator):
    """libp2p record validator for the ``chorus-health`` namespace.

    ``validate`` runs on our own puts, on every PUT_VALUE a peer sends us and on every
    record a GET returns. ``select`` returns 0, which py-libp2p reads as "the first
    candidate wins": on a local put that is the new value, but a peer receiving a
    PUT_VALUE for a key it already holds keeps its record (first write wins there), and on
    get it is the first answer. Our probe keys are unique, so neither case arises for them.
    Ordering health records by freshness is the application's job: its digests carry their
    own timestamps and signatures.
    """

    def __init__(self, max_value_size: int = DEFAULT_MAX_VALUE_SIZE) -> None:
        self.max_value_size = max_value_size

    def validate(self, key: str, value: bytes) -> None:
        check_key(key)
        if len(value) > self.max_value_size:
            raise InvalidRecord(
                f"value for {key} is {len(value)} bytes, over the limit of {self.max_value_size}"
            )

    def select(self, key: str, values: list[bytes]) -> int:
        return 0


class DHT(Protocol):
    """What the mesh needs from a DHT."""

    async def put_value(self, key: str, value: bytes) -> None:
        """Store locally and at the closest peers; raises InvalidRecord for bad input."""

    async def get_value(self, key: str) -> bytes | None:
        """The local copy if there is one, else the first valid answer from the network."""

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        """Ask exactly one peer (base58 id) for its copy; None if it has none or fails."""

    def local_peers(self) -> list[str]:
        """Peers in our routing table (base58 ids)."""


class LibP2PDHT:
    """:class:`DHT` over a running py-libp2p ``KadDHT`` (server mode, validator registered)."""

    def __init__(
        self,
        dht: KadDHT,
        validator: HealthRecordValidator,
        *,
        peer_timeout: float = 5.0,
    ) -> None:
        self._dht = dht
        self._validator = validator
        # _get_from_peer has no timeout of its own: a frozen peer keeps the stream open.
        self._peer_timeout = peer_timeout

    async def put_value(self, key: str, value: bytes) -> None:
        self._validator.validate(key, value)
        # put_value returns nothing and swallows per-peer failures (notes, "Kademlia");
        # count replicas with get_from_peer.
        try:
            await self._dht.put_value(key, value)
        except InvalidRecord:
            raise
        except Exception as exc:
            raise DHTError(f"DHT put of {key} failed: {exc!r}") from exc

    async def get_value(self, key: str) -> bytes | None:
        check_key(key)
        try:
            value = await self._dht.get_value(key)
        except Exception as exc:
            raise DHTError(f"DHT get of {key} failed: {exc!r}") from exc
        return value

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        check_key(key)
        try:
            pid = ID.from_base58(peer_id)
        except Exception as exc:
            raise DHTError(f"{peer_id!r} is not a base58 peer id") from exc
        # ValueStore._get_from_peer is private API; this is the one place that touches it
        # (notes, "Kademlia": counting replicas means asking peers directly). It catches
        # its own network errors and returns None. It does not validate what comes back.
        with trio.move_on_after(self._peer_timeout):
            value = await self._dht.value_store._get_from_peer(pid, key.encode("utf-8"))
            if not isinstance(value, bytes):
                return None
            try:
                self._validator.validate(key, value)
            except InvalidRecord as exc:
                logger.warning("peer %s returned an invalid record: %s", peer_id, exc)
                return None
            return value
        logger.info("peer %s did not answer GET %s within %.1fs", peer_id, key, self._peer_timeout)
        return None

    def local_peers(self) -> list[str]:
        return [pid.to_base58() for pid in self._dht.routing_table.get_peer_ids()]


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
    """A shared set of fake DHT stores; every reachable node holds every value (k >= N).

    Real py-libp2p with k = 20 also gives every node a copy while N <= 20 (notes).
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
