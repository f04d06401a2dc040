"""Bounds on what peers can make our Kademlia keep: :class:`RecordGuard`.

A validator sees only the key and the value, but py-libp2p stores the whole ``Record`` a
peer sends, for 24 h: a small value with a 900 KB ``signature`` passes (py-libp2p notes,
"Kademlia"). :class:`RecordGuard` bounds what peers can make us keep: whole records up to
a size, and a number of live records per publisher (the remote peer of the PUT stream).

Separate from ``adapters.dht`` (the DHT port itself) because it is a patch of py-libp2p's
value store and stream handler with rules of its own, tested on its own.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING

from probes.ports import NAMESPACE, DHTError

if TYPE_CHECKING:
    from libp2p.abc import INetStream
    from libp2p.kad_dht.kad_dht import KadDHT
    from libp2p.kad_dht.pb.kademlia_pb2 import Record
    from libp2p.kad_dht.value_store import ValueStore

__all__ = [
    "CLEANUP_INTERVAL",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_RECORDS_PER_PUBLISHER",
    "DEFAULT_RECORD_TTL",
    "OTHER_MAX_RECORDS",
    "OTHER_MAX_RECORD_SIZE",
    "RECORD_DROP_REASONS",
    "RecordGuard",
    "RecordRefused",
]

# The DHT edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.dht")

_KEY_PREFIX = f"/{NAMESPACE}/".encode()

# Live records one publisher may have in our store, per namespace group (ours; all
# others). Over it, its oldest is dropped to make room, not the new one refused: an honest
# node leaves one record per DHT probe for py-libp2p's fixed 24 h (a few hundred a day at
# one probe every 90 s), and refusing would fail its probes within hours, while dropping
# the oldest only ever costs the publisher its own records. The replication check reads
# back the last 8 (probes/dht_probe.py, RECENT_RECORDS).
DEFAULT_MAX_RECORDS_PER_PUBLISHER = 64
# Whole-record bound for the other namespaces our Kademlia accepts (py-libp2p's fallback
# validators for /pk/ and /ipns/; strict validation refuses the rest): the IPNS spec caps
# an entry at 10 KiB, and a /pk/ record is one public key. py-libp2p's own bound is 1 MiB.
OTHER_MAX_RECORD_SIZE = 16 * 1024
# Records from peers held at most, in all: fresh identities are free, so the per-publisher
# quota alone would let many publishers fill py-libp2p's 50,000-entry store (250 MB of
# 5 KiB records, more than a Kubernetes pod's memory limit). Beyond this the oldest record
# of the group goes. Ours: a cluster of n nodes probing every 15 s keeps about 5,760 n
# records a day, so this keeps the last few hours of a small cluster, 20 MiB at worst.
DEFAULT_MAX_RECORDS = 4096
OTHER_MAX_RECORDS = 512
# Seconds a record under our namespace is kept, by us and, through their guards, by our
# peers: a probe record is read back within the probe's timeout, and the replication
# check re-reads the 3 newest (one per probe interval), so minutes do, where py-libp2p's
# 24 h made every node's store grow with uptime (issue 13). Never republished.
DEFAULT_RECORD_TTL = 600.0
# Seconds between two sweeps of expired records (py-libp2p sweeps every 10 minutes).
CLEANUP_INTERVAL = 60.0
# Why RecordGuard did not keep a record: too large for its namespace (oversized), or the
# publisher's oldest record dropped to keep it within its quota (publisher_quota).
RECORD_DROP_REASONS = ("oversized", "publisher_quota", "store_full")

# The remote peer of the Kademlia stream being handled, in that stream's task: py-libp2p
# hands ValueStore.put_record the record but not who sent it.
_publisher: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chorus_dht_publisher", default=None
)


class RecordRefused(DHTError):
    """A peer's PUT_VALUE carried a record over the size bound; raised inside py-libp2p's
    handler, which then stores nothing, sends no acknowledgement and resets the stream."""


class RecordGuard:
    """Bounds the records peers can make a py-libp2p ``KadDHT`` keep.

    Rules, for every record py-libp2p is about to store (``ValueStore.put_record``):

    1. A record under ``/chorus-health/`` larger than ``max_record_size`` serialized (key,
       value, author, signature and receive time all counted), or one under another
       namespace larger than ``other_max_record_size``, is not stored (``oversized``).
       From a peer's PUT_VALUE it raises :class:`RecordRefused`, so py-libp2p sends no
       acknowledgement and resets the stream; a record our own GET fetched is just not
       cached (the GET still returns its value).
    2. A publisher (the remote peer of the PUT_VALUE stream) keeps at most
       ``max_per_publisher`` live records under ``/chorus-health/`` and as many under
       other namespaces; a new one beyond that drops its oldest (``publisher_quota``).
    3. All publishers together keep at most ``max_records`` under ``/chorus-health/`` and
       ``other_max_records`` under other namespaces; a new one beyond that drops the
       oldest of its group, whoever published it (``store_full``).
    4. A record under ``/chorus-health/``, a peer's or our own, is kept ``record_ttl``
       seconds, not py-libp2p's 24 h, and ours is never republished; expired records are
       swept every ``CLEANUP_INTERVAL``.

    Our own puts (``ValueStore.put``) are not touched: our validator already checked them.
    ``dropped`` counts by reason (:data:`RECORD_DROP_REASONS`). Install with :meth:`install`.
    """

    def __init__(
        self,
        *,
        max_record_size: int,
        other_max_record_size: int = OTHER_MAX_RECORD_SIZE,
        max_per_publisher: int = DEFAULT_MAX_RECORDS_PER_PUBLISHER,
        max_records: int = DEFAULT_MAX_RECORDS,
        other_max_records: int = OTHER_MAX_RECORDS,
        record_ttl: float = DEFAULT_RECORD_TTL,
    ) -> None:
        if max_per_publisher < 1:
            raise ValueError(f"max_per_publisher must be at least 1, got {max_per_publisher}")
        self.max_record_size = max_record_size
        self.other_max_record_size = other_max_record_size
        self.max_per_publisher = max_per_publisher
        self._max_records = {True: max_records, False: other_max_records}
        self.record_ttl = record_ttl
        self._swept = time.monotonic()
        # ours -> key -> publisher, oldest first: what rule 3 evicts from.
        self._order: dict[bool, OrderedDict[bytes, str]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        self._store: ValueStore | None = None
        # (publisher, ours) -> key -> the record object we let py-libp2p store, oldest
        # first. The object tells whether the store still holds our record under that key
        # (py-libp2p keeps the object it was given).
        self._owned: dict[tuple[str, bool], OrderedDict[bytes, Record]] = {}
        self._tracked = 0
        self.dropped: Counter[str] = Counter()

    def install(self, kad: KadDHT) -> None:
        """Wrap ``kad``'s value store and stream handler, on the instances.

        What this relies on in py-libp2p 0.8.1 (``libp2p/kad_dht``):

        - ``kad_dht.py`` ``KadDHT.handle_stream`` (lines 576-595), registered once in
          ``__init__``, calls ``self._do_handle_stream(stream)`` for every inbound stream,
          so an instance attribute takes over from the next stream on; that method runs
          in the stream's own task, and reads ``stream.muxed_conn.peer_id``.
        - ``kad_dht.py`` PUT_VALUE (lines 1082-1213): the validator sees only key and
          value; the signature is verified only when ``author`` is set too; the whole
          record is kept via ``self.value_store.put_record(key, cleaned_record)``, inside
          a ``try`` whose ``except Exception`` stores nothing and resets the stream.
        - ``kad_dht.py`` ``get_value`` (line 1653) caches the record it fetched with the
          same ``put_record``, outside any stream handler.
        - ``value_store.py`` ``ValueStore.put_record`` (lines 196-211) stores ``(record,
          time.time() + DEFAULT_TTL)`` in the dict ``store``; ``remove(key)`` deletes.
        """
        store = kad.value_store
        self._store = store
        original_put = store.put_record
        original_own_put = store.put
        original_handle = kad._do_handle_stream

        def put_record(key: bytes, record: Record) -> None:
            self._sweep()
            if self._admit(key, record, _publisher.get()):
                original_put(key, record)
                if key.startswith(_KEY_PREFIX):
                    store.store[key] = (record, time.time() + self.record_ttl)

        def put(key: bytes, value: bytes, validity: float = 0.0) -> None:
            self._sweep()
            if not key.startswith(_KEY_PREFIX):
                original_own_put(key, value, validity)
                return
            original_own_put(key, value, time.time() + self.record_ttl)
            # py-libp2p republishes what we put after 22 h: a probe record is done in
            # seconds, and would outlive its purpose by a day.
            store.local_keys.discard(key)

        async def handle(stream: INetStream) -> None:
            try:
                publisher: str | None = stream.muxed_conn.peer_id.to_base58()
            except Exception:  # py-libp2p's handler deals with such a stream itself
                publisher = None
            token = _publisher.set(publisher)
            try:
                await original_handle(stream)
            finally:
                _publisher.reset(token)

        store.put_record = put_record  # type: ignore[method-assign]
        store.put = put  # type: ignore[method-assign]
        kad._do_handle_stream = handle  # type: ignore[method-assign]

    def _sweep(self) -> None:
        now = time.monotonic()
        if self._store is None or now - self._swept < CLEANUP_INTERVAL:
            return
        self._swept = now
        self._store.cleanup_expired()

    def _admit(self, key: bytes, record: Record, publisher: str | None) -> bool:
        """Whether to store ``record``; raises RecordRefused for a peer's oversized one."""
        ours = key.startswith(_KEY_PREFIX)
        limit = self.max_record_size if ours else self.other_max_record_size
        size = record.ByteSize()
        if size > limit:
            self.dropped["oversized"] += 1
            logger.info(
                "DHT record for %r from %s is %d bytes, over the limit of %d: not stored",
                key[:64],
                publisher or "our own GET",
                size,
                limit,
            )
            if publisher is not None:
                raise RecordRefused(f"record of {size} bytes, over the limit of {limit}")
            return False
        if publisher is not None:
            self._make_room(publisher, ours, key, record)
        return True

    def _make_room(self, publisher: str, ours: bool, key: bytes, record: Record) -> None:
        owned = self._owned.setdefault((publisher, ours), OrderedDict())
        self._prune(owned)
        while len(owned) >= self.max_per_publisher:
            oldest, _ = owned.popitem(last=False)
            self._tracked -= 1
            assert self._store is not None
            self._store.remove(oldest)
            self.dropped["publisher_quota"] += 1
            logger.info("DHT publisher %s over its quota: dropped its record %r", publisher, oldest)
        if key in owned:
            self._tracked -= 1
        owned[key] = record
        owned.move_to_end(key)
        self._tracked += 1
        self._evict_beyond_total(ours, key, publisher)
        # Entries of publishers that never put again go stale as records expire or are
        # replaced; sweep them all once they outnumber the store, so this stays bounded.
        assert self._store is not None
        if self._tracked > 2 * len(self._store.store) + self.max_per_publisher:
            for group in list(self._owned):
                self._prune(self._owned[group])
                if not self._owned[group]:
                    del self._owned[group]

    def _evict_beyond_total(self, ours: bool, key: bytes, publisher: str) -> None:
        order = self._order[ours]
        order.pop(key, None)
        order[key] = publisher
        assert self._store is not None
        while len(order) > self._max_records[ours]:
            oldest, owner = order.popitem(last=False)
            owned = self._owned.get((owner, ours))
            if owned is not None and owned.pop(oldest, None) is not None:
                self._tracked -= 1
            if oldest in self._store.store:
                self._store.remove(oldest)
                self.dropped["store_full"] += 1

    def _prune(self, owned: OrderedDict[bytes, Record]) -> None:
        """Forget the keys whose stored record is no longer the one we let in, or expired."""
        assert self._store is not None
        now = time.time()  # py-libp2p's validity is Unix time (ValueStore.put_record)
        for key, record in list(owned.items()):
            entry = self._store.store.get(key)
            if entry is None or entry[0] is not record or entry[1] < now:
                del owned[key]
                self._tracked -= 1

    def live_records(self, publisher: str, *, ours: bool = True) -> int:
        """Records of ``publisher`` (base58) we still hold, under our namespace or not."""
        owned = self._owned.get((publisher, ours))
        if owned is None:
            return 0
        self._prune(owned)
        return len(owned)
