"""The active DHT probe: outcomes on the in-memory DHT, then against real Kademlia peers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from adapters.dht_memory import InMemoryDHTNetwork, PeerBehaviour
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from adapters.p2p_node import P2PNode
from probes.dht_probe import (
    DHTOutcome,
    DHTProbe,
    active_dht_check,
    is_intact,
    make_value,
)
from probes.ports import DHT, DHTError


class FakeCluster:
    def __init__(self, names: str) -> None:
        self.net = InMemoryDHTNetwork()
        self.nodes = {name: self.net.attach(name) for name in names}

    def probe(self, name: str, **options: Any) -> DHTProbe:
        return DHTProbe(self.nodes[name], **options)


# --------------------------------------------------------------------- record


@pytest.mark.parametrize(
    ("value", "intact"),
    [
        (make_value(b"\x01" * 32), True),
        (make_value(b""), False),  # nothing but a hash: not a record
        (bytes(b ^ 0xFF for b in make_value(b"\x01" * 32)), False),
        (make_value(b"\x01" * 32)[:-1] + b"\x00", False),
        (b"short", False),
    ],
)
def test_is_intact(value: bytes, intact: bool) -> None:
    assert is_intact(value) is intact


# ---------------------------------------------------------------------- fakes


async def test_success_reads_back_from_other_peers(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("ABCD")
    probe = cluster.probe("A")
    start = trio.current_time()
    outcome = await probe.run()

    assert outcome.outcome is DHTOutcome.SUCCESS and outcome.healthy
    assert sorted(outcome.peers_asked) == ["B", "C", "D"]
    assert outcome.replicas == outcome.peers_asked
    # The 100 ms propagation wait is all the time a fake takes.
    assert trio.current_time() - start == outcome.latency == pytest.approx(0.1)
    assert len(outcome.key) == 47 and outcome.key.startswith("/chorus-health/")
    assert [r.key for r in probe.recent] == [outcome.key]
    assert is_intact(cluster.net.store_of("B")[outcome.key])
    details = outcome.result().details
    assert details["outcome"] == "success"
    assert details["replicas_found"] == details["peers_asked"] == 3
    assert details["key"] == outcome.key
    assert details["latency_ms"] == pytest.approx(100.0)
    assert outcome.message.startswith("3 of 3 peers returned the value")


async def test_each_probe_uses_a_new_key(autojump_clock: trio.abc.Clock) -> None:
    probe = FakeCluster("AB").probe("A")
    keys = {(await probe.run()).key for _ in range(3)}
    assert len(keys) == 3


async def test_corrupt_peer_is_an_integrity_violation_even_beside_good_copies(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = FakeCluster("ABC")
    cluster.net.set_behaviour("B", PeerBehaviour.CORRUPT)
    result = (await cluster.probe("A").run()).result()

    assert not result.healthy
    assert result.details["outcome"] == "integrity_violation"
    assert result.details["mismatched_peers"] == ["B"]
    assert result.details["replicas_found"] == 1
    assert result.message.startswith("DHT integrity violation: B returned a different value")
    assert result.error == "integrity_violation"


async def test_no_peer_taking_the_record_is_a_failure(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("ABC")
    cluster.net.set_behaviour("B", PeerBehaviour.SILENT)
    cluster.net.set_behaviour("C", PeerBehaviour.SILENT)
    probe = cluster.probe("A")
    outcome = await probe.run()

    assert outcome.outcome is DHTOutcome.FAILURE
    assert outcome.message == f"no peer took the DHT record {outcome.key}"
    assert [(r.key, r.holders) for r in probe.recent] == [(outcome.key, ())]


async def test_holders_that_lost_their_copy_are_a_failure(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("ABC")

    def lose(key: str) -> None:
        for name in "BC":
            del cluster.net.store_of(name)[key]

    outcome = await DHTProbe(AfterPut(cluster.nodes["A"], lose)).run()
    assert outcome.outcome is DHTOutcome.FAILURE
    assert outcome.message.startswith("none of 2 peers returned the value for /chorus-health/")


async def test_isolated_node_fails_without_a_put(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("AB")
    cluster.net.set_reachable("A", False)
    outcome = await cluster.probe("A").run()

    assert outcome.outcome is DHTOutcome.FAILURE
    assert outcome.message == "no connected DHT peers to read the value back from"
    assert cluster.net.store_of("A") == {}


async def test_a_record_goes_to_the_replicas_only_and_is_read_back_from_them(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = FakeCluster("ABCDEFGHI")
    probe = cluster.probe("A")
    outcome = await probe.run()
    holders = sorted(name for name in "BCDEFGHI" if outcome.key in cluster.net.store_of(name))
    assert len(holders) == 3 and outcome.key not in cluster.net.store_of("A")
    assert sorted(outcome.peers_asked) == sorted(outcome.replicas) == holders
    assert probe.recent[-1].holders == outcome.peers_asked
    # More replicas than reads: the reads stay bounded.
    wide = await cluster.probe("A", replicas=7, max_peers=5).run()
    assert len(wide.peers_asked) == 5 and wide.healthy
    # Connected peers only gate whether a probe starts at all.
    none = await cluster.probe("A", connected=lambda: ["Z"]).run()
    assert none.message == "no connected DHT peers to read the value back from"


class HangingDHT:
    """Stores locally, never answers a remote read."""

    def __init__(self, put_error: Exception | None = None) -> None:
        self.put_error = put_error

    async def put_value(self, key: str, value: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self.put_error is not None:
            raise self.put_error

    async def put_at_closest(self, key: str, value: bytes, replicas: int) -> list[str]:
        await self.put_value(key, value)
        return ["B"]

    async def get_value(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        await trio.sleep_forever()
        raise AssertionError

    def local_peers(self) -> list[str]:
        return ["B"]


async def test_a_peer_that_never_answers_costs_only_the_peer_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    probe = DHTProbe(HangingDHT(), peer_timeout=2.0)
    start = trio.current_time()
    outcome = await probe.run()
    assert trio.current_time() - start == pytest.approx(2.1)
    assert outcome.outcome is DHTOutcome.FAILURE


async def test_failed_put_is_a_failure(autojump_clock: trio.abc.Clock) -> None:
    probe = DHTProbe(HangingDHT(put_error=DHTError("boom")))
    outcome = await probe.run()
    assert outcome.outcome is DHTOutcome.FAILURE
    assert outcome.message == f"DHT put of {outcome.key} failed: boom"
    # Kept with no holder: the replication check counts it lost.
    assert [(r.key, r.holders) for r in probe.recent] == [(outcome.key, ())]


def test_active_check_has_the_reference_properties() -> None:
    check = active_dht_check(DHTProbe(HangingDHT()))
    assert (check.critical, check.interval, check.timeout, check.component) == (
        False,
        90.0,
        20.0,
        "dht",
    )


async def test_active_check_reads_a_fresh_enhanced_probe(autojump_clock: trio.abc.Clock) -> None:
    probe = DHTProbe(HangingDHT(put_error=DHTError("boom")))
    check = active_dht_check(probe)
    probe.last.max_age = 80.0  # dht-enhanced: every 60 s, 20 s timeout
    outcome = await probe.run()
    await trio.sleep(80.0)
    # The same outcome (its random key), not a new probe with a key of its own.
    assert (await check.checker()).details["key"] == outcome.key
    await trio.sleep(1.0)
    assert (await check.checker()).details["key"] != outcome.key


# ----------------------------------------------------------------- real peers


class AfterPut:
    """A DHT that calls ``hook(key)`` right after each put: tampers with a peer's copy."""

    def __init__(self, inner: DHT, hook: Callable[[str], None]) -> None:
        self.inner = inner
        self.hook = hook

    async def put_value(self, key: str, value: bytes) -> None:
        await self.inner.put_value(key, value)
        self.hook(key)

    async def put_at_closest(self, key: str, value: bytes, replicas: int) -> list[str]:
        holders = await self.inner.put_at_closest(key, value, replicas)
        self.hook(key)
        return holders

    async def get_value(self, key: str) -> bytes | None:
        return await self.inner.get_value(key)

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        return await self.inner.get_from_peer(peer_id, key)

    def local_peers(self) -> list[str]:
        return self.inner.local_peers()


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[P2PNode, P2PNode]]:
    cfg_a = P2PConfig(key_file=tmp_path / "a.key", listen_port=0)
    async with open_p2p_node(cfg_a) as a:
        cfg_b = P2PConfig(key_file=tmp_path / "b.key", listen_port=0, bootstrap=a.listen_addrs)
        async with open_p2p_node(cfg_b) as b:
            with trio.fail_after(10):
                await b.bootstrap_done.wait()
            assert b.peer_id in a.dht.local_peers()  # b queried a while bootstrapping
            yield a, b


@pytest.mark.network
async def test_real_probe_succeeds(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):
        outcome = await DHTProbe(a.dht, connected=a.connected_peers).run()
        assert outcome.outcome is DHTOutcome.SUCCESS, outcome.message
        assert outcome.replicas == (b.peer_id,)
        # b really holds its own copy: the read was remote.
        record = b.kad.value_store.get(outcome.key.encode())
        assert record is not None and is_intact(record.value)


@pytest.mark.network
async def test_real_probe_records_are_far_within_the_peers_record_bound(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):
        outcome = await DHTProbe(a.dht, connected=a.connected_peers).run()
        assert outcome.healthy, outcome.message
        record = b.kad.value_store.get(outcome.key.encode())
        assert record is not None
        # What b's RecordGuard weighs: the whole record (key, value, author, signature,
        # receive time) as b stores it, about 250 bytes against a bound of 5 KiB.
        guard = b.dht.record_guard
        assert record.ByteSize() * 4 < guard.max_record_size
        assert guard.dropped == {}
        assert guard.live_records(a.peer_id) == 1


@pytest.mark.network
async def test_real_tampered_copy_is_an_integrity_violation(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):

        def tamper(key: str) -> None:
            # py-libp2p checks a record's signature before serving it and deletes a bad
            # one, so a peer that flips bits in a signed record serves nothing. A buggy or
            # hostile peer serves whatever it likes, and the reader does not verify: model
            # that with an unsigned record carrying other bytes.
            record, _ = b.kad.value_store.store[key.encode()]
            record.value = bytes(x ^ 0x01 for x in record.value)
            record.signature = b""

        outcome = await DHTProbe(AfterPut(a.dht, tamper), connected=a.connected_peers).run()
        assert outcome.outcome is DHTOutcome.INTEGRITY_VIOLATION
        assert outcome.mismatched == (b.peer_id,)
        assert b.peer_id in outcome.message


@pytest.mark.network
async def test_real_peer_drops_a_signed_record_it_finds_tampered(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):

        def flip(key: str) -> None:
            record, _ = b.kad.value_store.store[key.encode()]
            record.value = bytes(x ^ 0x01 for x in record.value)

        outcome = await DHTProbe(AfterPut(a.dht, flip), connected=a.connected_peers).run()
        # b verifies the signature before serving, deletes the record and serves nothing.
        assert outcome.outcome is DHTOutcome.FAILURE
        assert b.kad.value_store.get(outcome.key.encode()) is None


@pytest.mark.network
async def test_real_peer_without_a_copy_is_a_plain_failure(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):

        def drop(key: str) -> None:
            assert b.kad.value_store.remove(key.encode())

        outcome = await DHTProbe(AfterPut(a.dht, drop), connected=a.connected_peers).run()
        assert outcome.outcome is DHTOutcome.FAILURE
        assert outcome.peers_asked == (b.peer_id,) and outcome.replicas == ()
        assert outcome.message.startswith("none of 1 peers returned the value")
