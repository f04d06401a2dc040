"""The DHT edge: ``probes.ports.DHT`` over py-libp2p's Kademlia.

Keys live in one namespace, ``/chorus-health/<32 lowercase hex>`` (47 bytes). Keys longer
than 50 bytes that are not multihashes make remote FIND_NODE fail and lookups fall back to
the local table silently (py-libp2p notes, "Kademlia"), so the key format
(``probes.ports.check_key``) is enforced here, on both the put and the get side.

Every node registers :class:`HealthRecordValidator` for the namespace: without one a
py-libp2p node stores whatever it is sent, of any size (notes, "Hostile input").
What peers can make us keep beyond the value is bounded by ``adapters.dht_record_guard``;
the in-memory fake is ``adapters.dht_memory``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from libp2p.kad_dht.utils import sort_peer_ids_by_distance
from libp2p.peer.id import ID
from libp2p.records.validator import Validator

from adapters.dht_record_guard import (
    DEFAULT_MAX_RECORDS_PER_PUBLISHER,
    DEFAULT_RECORD_TTL,
    RecordGuard,
)

# The interface and the key rule are the probes layer's (probes/ports.py).
from probes.ports import DHT, NAMESPACE, DHTError, InvalidRecord, check_key, health_key

if TYPE_CHECKING:
    from libp2p.kad_dht.kad_dht import KadDHT

__all__ = [
    "DEFAULT_MAX_VALUE_SIZE",
    "DHT",
    "NAMESPACE",
    "RECORD_OVERHEAD",
    "DHTError",
    "HealthRecordValidator",
    "InvalidRecord",
    "LibP2PDHT",
    "health_key",
]

logger = logging.getLogger(__name__)

# A health digest is a few hundred bytes; 4 KiB leaves room and still bounds what a
# hostile peer can make us store per key.
DEFAULT_MAX_VALUE_SIZE = 4 * 1024

# A stored record is key, value, author (the signer's public key), signature and the
# receive time. Besides the value, our probe's records (probes/dht_probe.py: 47-byte key,
# 64-byte value, Ed25519) carry 187 bytes: 251 in all. 1 KiB of room for everything but
# the value covers the authors and signatures of Ed25519, secp256k1, ECDSA and RSA keys up
# to 3072 bits, so a record whose value our validator accepts is never refused for size.
RECORD_OVERHEAD = 1024


# Peers a put_at_closest tries, per replica wanted, before it gives up: a few unreachable
# ones near the key cost a round each (at most the peer timeout), not the probe.
MAX_STORE_TRIES = 3


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

    @property
    def max_record_size(self) -> int:
        """The largest whole record (serialized) :class:`~adapters.dht_record_guard.RecordGuard`
        keeps for us."""
        return self.max_value_size + RECORD_OVERHEAD

    def validate(self, key: str, value: bytes) -> None:
        check_key(key)
        if len(value) > self.max_value_size:
            raise InvalidRecord(
                f"value for {key} is {len(value)} bytes, over the limit of {self.max_value_size}"
            )

    def select(self, key: str, values: list[bytes]) -> int:
        return 0


class LibP2PDHT:
    """:class:`DHT` over a running py-libp2p ``KadDHT`` (server mode, validator registered).

    Installs a :class:`RecordGuard` on ``dht`` (``record_guard``), sized from the
    validator: from then on peers cannot make it keep oversized records, nor more than
    ``max_records_per_publisher`` live ones each.
    """

    def __init__(
        self,
        dht: KadDHT,
        validator: HealthRecordValidator,
        *,
        peer_timeout: float = 5.0,
        max_records_per_publisher: int = DEFAULT_MAX_RECORDS_PER_PUBLISHER,
        record_ttl: float = DEFAULT_RECORD_TTL,
    ) -> None:
        self._dht = dht
        self._validator = validator
        # _get_from_peer has no timeout of its own: a frozen peer keeps the stream open.
        self._peer_timeout = peer_timeout
        self.record_guard = RecordGuard(
            max_record_size=validator.max_record_size,
            max_per_publisher=max_records_per_publisher,
            record_ttl=record_ttl,
        )
        self.record_guard.install(dht)

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

    async def put_at_closest(self, key: str, value: bytes, replicas: int) -> list[str]:
        self._validator.validate(key, value)
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        key_bytes = key.encode("utf-8")
        local = self._dht.local_peer_id
        # The same iterative FIND_NODE lookup as put_value's, for as many peers as we store
        # at (and ourselves, whom it may list): put_value stores at all k = 20, so with up
        # to 20 nodes every probe record went to every node (ValueStore._store_at_peer is
        # private API, like _get_from_peer below).
        try:
            found = await self._dht.peer_routing.find_closest_peers_network(
                key_bytes, count=replicas + 1
            )
        except Exception as exc:
            raise DHTError(f"lookup of the peers closest to {key} failed: {exc!r}") from exc
        # A lookup's answer can name peers nobody can reach: ids a hostile peer it asked made
        # up (py-libp2p puts them in the routing table as it goes), or stale peerstore
        # entries. Store only at routing-table peers we hold a connection to, whose id a
        # Noise handshake proved, nearest first, and go on down that list while stores fail.
        connected = set(self._dht.host.get_connected_peers())
        known = {peer for peer in self._dht.routing_table.get_peer_ids() if peer in connected}
        known.discard(local)
        ordered = [peer for peer in found if peer in known]
        ordered += [
            p for p in sort_peer_ids_by_distance(key_bytes, list(known)) if p not in ordered
        ]
        candidates = ordered[: MAX_STORE_TRIES * replicas]
        stored: list[str] = []

        async def store(peer: ID) -> None:
            with trio.move_on_after(self._peer_timeout):
                try:
                    if await self._dht.value_store._store_at_peer(peer, key_bytes, value):
                        stored.append(peer.to_base58())
                except Exception as exc:
                    logger.info("PUT %s at %s failed: %r", key, peer, exc)

        # One deadline for all the rounds: peers that accept the stream and never answer
        # cost it once, not a peer timeout per round.
        with trio.move_on_after(2 * self._peer_timeout):
            while len(stored) < replicas and candidates:
                wanted = replicas - len(stored)
                batch, candidates = candidates[:wanted], candidates[wanted:]
                async with trio.open_nursery() as nursery:
                    for peer in batch:
                        nursery.start_soon(store, peer)
        return stored

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
