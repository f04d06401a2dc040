"""The active DHT probe: put a fresh record, then read it back from other peers.

The reference's flow ("Active DHT Check"): unique key and value, put, wait 100 ms for
propagation, get, compare. A get on the node that put answers from its local store
(py-libp2p notes, "Kademlia") and proves nothing about the network, so the record is put
at the ``replicas`` (default 3) peers that Kademlia's iterative lookup finds closest to its
key, not locally, and read back from each of them directly (``DHT.get_from_peer``). Three
outcomes:

- ``success``: at least one peer returned exactly the value we put, and none returned
  anything else;
- ``integrity_violation``: some peer returned different bytes (named in the message). This
  wins over success: a health check must not hide corruption behind another peer's good
  copy;
- ``failure``: no peer returned anything, no peer took the record, there was no connected
  peer to begin with, or the lookup failed.

Record format: key ``/chorus-health/<uuid4 hex>`` (47 bytes, short enough for remote
FIND_NODE), value ``r || sha256(r)`` with ``r`` 32 random bytes (64 bytes in all). Any
reader can tell a corrupted value (hash does not match) from some other intact record.

Cost: a probe is one lookup (a few FIND_NODEs), ``replicas`` PUTs and as many GETs. A plain
``put_value`` stores at k = 20 peers, so up to 20 nodes every probe wrote every node, and
Kademlia was a quarter of an idle node's bytes (devnet/cost_breakdown.py, 2026-12-04). A
record lives minutes on each holder and is never republished (``adapters.dht_record_guard``,
``RecordGuard``, which also keeps at most the 64 newest records of one publisher).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import trio

from mesh.model import CheckResult, HealthCheck
from probes.last_outcome import LastOutcome
from probes.ports import DHT, DHTError, health_key

__all__ = [
    "ACTIVE_DHT_CHECK",
    "DHTOutcome",
    "DHTProbe",
    "DHTProbeOutcome",
    "ProbeRecord",
    "active_dht_check",
    "is_intact",
    "make_value",
    "read_from_peers",
]

logger = logging.getLogger(__name__)

ACTIVE_DHT_CHECK = "dht-active-probe"
# The reference's Active DHT Check properties.
ACTIVE_INTERVAL = 90.0
ACTIVE_TIMEOUT = 20.0

PROPAGATION_WAIT = 0.1  # seconds; the reference's "wait for propagation (100ms)"
DEFAULT_MAX_PEERS = 5  # peers asked per probe: enough to see a replica, bounded as N grows
# Peers a probe record is stored at. Three proves the lookup, the PUT and the GET path to
# more than one peer, so one faulty holder is named rather than taken for the network.
DEFAULT_REPLICAS = 3
DEFAULT_PEER_TIMEOUT = 5.0  # per peer read; LibP2PDHT has the same bound of its own
RANDOM_BYTES = 32
# Records kept for the replication check; well under the records of one publisher that
# a peer keeps (adapters.dht_record_guard.DEFAULT_MAX_RECORDS_PER_PUBLISHER), so all can be read.
RECENT_RECORDS = 8


class DHTOutcome(StrEnum):
    SUCCESS = "success"
    INTEGRITY_VIOLATION = "integrity_violation"
    FAILURE = "failure"


def make_value(random_part: bytes) -> bytes:
    return random_part + hashlib.sha256(random_part).digest()


def is_intact(value: bytes) -> bool:
    """Whether ``value`` is some probe record whose embedded hash matches."""
    body, digest = value[:-32], value[-32:]
    return len(value) > 32 and hashlib.sha256(body).digest() == digest


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    key: str
    value: bytes
    put_at: float  # trio time
    holders: tuple[str, ...] = ()  # peers that accepted the PUT


@dataclass(frozen=True, slots=True)
class DHTProbeOutcome:
    outcome: DHTOutcome
    key: str
    peers_asked: tuple[str, ...]
    replicas: tuple[str, ...]  # peers that returned exactly our value
    mismatched: tuple[str, ...]  # peers that returned other bytes
    latency: float  # seconds for the whole probe, the 100 ms wait included
    error: str | None = None  # why a put failed, or why nobody was asked

    @property
    def healthy(self) -> bool:
        return self.outcome is DHTOutcome.SUCCESS

    @property
    def message(self) -> str:
        asked = len(self.peers_asked)
        if self.outcome is DHTOutcome.INTEGRITY_VIOLATION:
            return (
                f"DHT integrity violation: {', '.join(self.mismatched)} returned a different"
                f" value for {self.key} ({len(self.replicas)} of {asked} peers returned it intact)"
            )
        if self.outcome is DHTOutcome.SUCCESS:
            return (
                f"{len(self.replicas)} of {asked} peers returned the value in"
                f" {self.latency * 1000:.0f} ms"
            )
        if self.error is not None:
            return self.error
        return f"none of {asked} peers returned the value for {self.key}"

    def details(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "latency_ms": self.latency * 1000,
            "replicas_found": len(self.replicas),
            "peers_asked": len(self.peers_asked),
            "key": self.key,
            "mismatched_peers": list(self.mismatched),
        }

    def result(self) -> CheckResult:
        return CheckResult(
            healthy=self.healthy,
            message=self.message,
            details=self.details(),
            error=None if self.healthy else str(self.outcome),
        )


class DHTProbe:
    """Runs probes against ``dht``; keeps the last few records for the replication check.

    ``connected`` (e.g. ``P2PNode.connected_peers``) narrows the routing table to peers we
    hold a connection to: asking a peer we cannot reach only burns the timeout.
    """

    def __init__(
        self,
        dht: DHT,
        *,
        connected: Callable[[], Iterable[str]] | None = None,
        max_peers: int = DEFAULT_MAX_PEERS,
        replicas: int = DEFAULT_REPLICAS,
        peer_timeout: float = DEFAULT_PEER_TIMEOUT,
    ) -> None:
        if max_peers < 1:
            raise ValueError(f"max_peers must be at least 1, got {max_peers}")
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.dht = dht
        self._connected = connected
        self.max_peers = max_peers
        self.replicas = replicas
        self.peer_timeout = peer_timeout
        self.recent: deque[ProbeRecord] = deque(maxlen=RECENT_RECORDS)
        self.last = LastOutcome[DHTProbeOutcome]()  # what the active check may read

    def settled(self) -> list[ProbeRecord]:
        """The recent records whose put is over: taken by someone, or put at least the
        active check's timeout ago (a put still running would count as lost)."""
        now = trio.current_time()
        return [r for r in self.recent if r.holders or now - r.put_at >= ACTIVE_TIMEOUT]

    def candidate_peers(self) -> list[str]:
        """Routing-table peers, narrowed to connected ones when we know them."""
        peers = set(self.dht.local_peers())
        if self._connected is not None:
            peers &= set(self._connected())
        return sorted(peers)

    async def run(self) -> DHTProbeOutcome:
        """One probe; its outcome is also kept in ``last``."""
        return self.last.put(await self._probe())

    async def _probe(self) -> DHTProbeOutcome:
        started = trio.current_time()
        key = health_key(uuid.uuid4().hex)
        value = make_value(secrets.token_bytes(RANDOM_BYTES))
        candidates = self.candidate_peers()
        if not candidates:
            return DHTProbeOutcome(
                DHTOutcome.FAILURE,
                key,
                (),
                (),
                (),
                trio.current_time() - started,
                error="no connected DHT peers to read the value back from",
            )
        # Kept before the put, with nobody holding it: if the put fails, outlasts the
        # check's timeout or finds no taker, the replication check counts the record lost.
        record = ProbeRecord(key, value, trio.current_time())
        self.recent.append(record)
        try:
            holders = await self.dht.put_at_closest(key, value, self.replicas)
        except DHTError as exc:
            return DHTProbeOutcome(
                DHTOutcome.FAILURE,
                key,
                (),
                (),
                (),
                trio.current_time() - started,
                error=f"DHT put of {key} failed: {exc}",
            )
        if not holders:
            return DHTProbeOutcome(
                DHTOutcome.FAILURE,
                key,
                (),
                (),
                (),
                trio.current_time() - started,
                error=f"no peer took the DHT record {key}",
            )
        # Bounded whatever the port returns: these are the peers we read back from.
        asked = tuple(dict.fromkeys(holders))[: self.max_peers]
        if record in self.recent:  # a deque of at most RECENT_RECORDS
            self.recent[self.recent.index(record)] = dataclasses.replace(record, holders=asked)
        # The reference's propagation wait; part of the protocol, not a cover for a race.
        await trio.sleep(PROPAGATION_WAIT)
        answers = await read_from_peers(self.dht, key, asked, self.peer_timeout)
        replicas = tuple(p for p in asked if answers.get(p) == value)
        mismatched = tuple(p for p in asked if answers.get(p) not in (None, value))
        if mismatched:
            outcome = DHTOutcome.INTEGRITY_VIOLATION
            for peer in mismatched:
                logger.warning(
                    "DHT peer %s returned a %s value for %s",
                    peer,
                    "different intact" if is_intact(answers[peer] or b"") else "corrupted",
                    key,
                )
        elif replicas:
            outcome = DHTOutcome.SUCCESS
        else:
            outcome = DHTOutcome.FAILURE
        return DHTProbeOutcome(
            outcome, key, asked, replicas, mismatched, trio.current_time() - started
        )


async def read_from_peers(
    dht: DHT, key: str, peers: Iterable[str], timeout: float
) -> dict[str, bytes | None]:
    """Ask each peer for its copy of ``key`` at once; None for no copy, error or timeout."""
    answers: dict[str, bytes | None] = {}

    async def ask(peer: str) -> None:
        answers[peer] = None
        with trio.move_on_after(timeout):
            try:
                answers[peer] = await dht.get_from_peer(peer, key)
            except DHTError as exc:
                logger.info("DHT read of %s from %s failed: %s", key, peer, exc)

    async with trio.open_nursery() as nursery:
        for peer in peers:
            nursery.start_soon(ask, peer)
    return answers


def active_dht_check(probe: DHTProbe, *, name: str = ACTIVE_DHT_CHECK) -> HealthCheck:
    """The reference's Active DHT Check: non-critical, every 90 s, 20 s timeout."""

    async def check_dht() -> CheckResult:
        # As the active PubSub check: the enhanced check's fresh probe, if there is one.
        outcome = probe.last.fresh()
        return (outcome if outcome is not None else await probe.run()).result()

    return HealthCheck(
        name=name,
        checker=check_dht,
        description="Put a record in the DHT and read it back from other peers",
        interval=ACTIVE_INTERVAL,
        timeout=ACTIVE_TIMEOUT,
        critical=False,
        component="dht",
    )
