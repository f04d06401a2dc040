"""DHT: the record validator, the in-memory fake, and LibP2PDHT over real Kademlia."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.pb.kademlia_pb2 import Record
from libp2p.kad_dht.value_store import ValueStore
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr  # type: ignore[import-untyped]  # ships no py.typed
from prometheus_client import CollectorRegistry

from adapters.dht import RECORD_OVERHEAD, HealthRecordValidator
from adapters.dht_memory import InMemoryDHTNetwork, PeerBehaviour
from adapters.dht_record_guard import (
    CLEANUP_INTERVAL,
    DEFAULT_RECORD_TTL,
    OTHER_MAX_RECORD_SIZE,
    RECORD_DROP_REASONS,
    RecordGuard,
    RecordRefused,
)
from adapters.libp2p_host import open_p2p_node
from adapters.metrics import dht_record_metrics
from adapters.p2p_config import P2PConfig
from adapters.p2p_node import P2PNode
from probes.ports import InvalidRecord, health_key
from tests.adapters import WaitUntil

MakeConfig = Callable[..., P2PConfig]
KEY = health_key("0123456789abcdef" * 2)
OTHER_KEY = health_key("f" * 32)


# ------------------------------------------------------------------- validator


@pytest.mark.parametrize(
    ("key", "size", "ok"),
    [
        (KEY, 0, True),
        (KEY, 4096, True),
        (KEY, 4097, False),
        ("/chorus-health/" + "A" * 32, 1, False),  # upper case
        ("/chorus-health/" + "a" * 31, 1, False),
        ("/chorus-health/" + "a" * 64, 1, False),  # too long for FIND_NODE (notes)
        ("/other/" + "a" * 32, 1, False),
        ("a" * 32, 1, False),
    ],
)
def test_validator(key: str, size: int, ok: bool) -> None:
    validator = HealthRecordValidator(max_value_size=4096)
    if ok:
        validator.validate(key, b"x" * size)
    else:
        with pytest.raises(InvalidRecord):
            validator.validate(key, b"x" * size)


def test_record_bound_leaves_room_beyond_the_largest_value() -> None:
    assert HealthRecordValidator(max_value_size=4096).max_record_size == 4096 + RECORD_OVERHEAD


def test_health_key_rejects_bad_ids() -> None:
    assert KEY == "/chorus-health/0123456789abcdef0123456789abcdef"
    with pytest.raises(InvalidRecord):
        health_key("not hex")


# ---------------------------------------------------------------- record guard
# RecordGuard on a real py-libp2p ValueStore, under a stand-in for KadDHT that does what
# its PUT_VALUE handler does: put_record from within the stream's handler.


@dataclass
class _Peer:
    name: str

    def to_base58(self) -> str:
        return self.name


@dataclass
class _Conn:
    peer_id: _Peer


@dataclass
class _Put:
    """A stream carrying one PUT_VALUE from ``peer``."""

    muxed_conn: _Conn
    key: bytes
    record: Record


class _Kad:
    def __init__(self) -> None:
        # put_record and remove use neither the host nor the peer id.
        self.value_store = ValueStore(host=None, local_peer_id=None)  # type: ignore[arg-type]

    async def _do_handle_stream(self, stream: Any) -> None:
        self.value_store.put_record(stream.key, stream.record)


def _key(i: int, namespace: str = "chorus-health") -> bytes:
    return f"/{namespace}/{i:032x}".encode()


def _record(key: bytes, *, signature: int = 64) -> Record:
    return Record(key=key, value=b"v" * 64, signature=b"s" * signature, author=b"")


async def _put(kad: _Kad, publisher: str, key: bytes, **kw: Any) -> None:
    await kad._do_handle_stream(_Put(_Conn(_Peer(publisher)), key, _record(key, **kw)))


def _guarded(**options: Any) -> tuple[_Kad, RecordGuard]:
    kad = _Kad()
    options.setdefault("max_record_size", 1024)
    guard = RecordGuard(**options)
    guard.install(kad)  # type: ignore[arg-type]
    return kad, guard


def _held(kad: _Kad, keys: list[bytes]) -> list[bool]:
    return [kad.value_store.get(k) is not None for k in keys]


async def test_guard_refuses_a_peers_oversized_record_and_skips_caching_one() -> None:
    kad, guard = _guarded(max_record_size=1024)
    with pytest.raises(RecordRefused):  # py-libp2p then resets the stream, no ack
        await _put(kad, "P", _key(1), signature=2000)
    await _put(kad, "P", _key(2), signature=700)  # about 830 bytes in all: within
    # A record our own GET fetched (no stream, no publisher) is just not cached.
    kad.value_store.put_record(_key(3), _record(_key(3), signature=2000))
    assert _held(kad, [_key(1), _key(2), _key(3)]) == [False, True, False]
    assert guard.dropped == {"oversized": 2}


async def test_guard_bounds_other_namespaces_by_their_own_limit() -> None:
    kad, guard = _guarded(max_record_size=1024, other_max_record_size=4096)
    await _put(kad, "P", _key(1, "pk"), signature=3000)
    with pytest.raises(RecordRefused):
        await _put(kad, "P", _key(2, "pk"), signature=5000)
    assert _held(kad, [_key(1, "pk"), _key(2, "pk")]) == [True, False]
    assert guard.dropped == {"oversized": 1}


async def test_a_publisher_past_its_quota_loses_its_oldest_records_only() -> None:
    kad, guard = _guarded(max_per_publisher=3)
    honest = [_key(100 + i) for i in range(3)]
    for key in honest:
        await _put(kad, "H", key)
    flood = [_key(i) for i in range(5)]
    for key in flood:
        await _put(kad, "P", key)  # every put is accepted: an honest prober keeps working
    assert _held(kad, flood) == [False, False, True, True, True]
    assert _held(kad, honest) == [True] * 3
    # Other namespaces count apart: they cannot push out our records, nor ours theirs.
    await _put(kad, "P", _key(0, "pk"))
    assert _held(kad, [*flood[2:], _key(0, "pk")]) == [True] * 4
    assert guard.live_records("P") == 3 and guard.live_records("P", ours=False) == 1
    assert guard.live_records("H") == 3
    assert guard.dropped == {"publisher_quota": 2}


async def test_expired_and_replaced_records_no_longer_count() -> None:
    kad, guard = _guarded(max_per_publisher=2)
    await _put(kad, "P", _key(1))
    await _put(kad, "P", _key(2))
    # Replaced by a record fetched by our own GET: no longer P's.
    kad.value_store.put_record(_key(1), _record(_key(1)))
    assert guard.live_records("P") == 1
    await _put(kad, "P", _key(3))
    assert guard.dropped == {}
    # py-libp2p keeps a record 24 h (Unix time); past that it is dead even while still
    # in the dict (it goes on the next get or cleanup).
    store = kad.value_store.store
    for key in (_key(2), _key(3)):
        store[key] = (store[key][0], time.time() - 1)
    assert guard.live_records("P") == 0
    await _put(kad, "P", _key(4))
    await _put(kad, "P", _key(5))
    assert guard.dropped == {}
    assert guard.live_records("P") == 2


async def test_guard_tracking_stays_bounded_as_publishers_come_and_go() -> None:
    kad, guard = _guarded(max_per_publisher=2)
    for i in range(200):
        await _put(kad, f"P{i}", _key(i))
        kad.value_store.remove(_key(i))  # expired or evicted by py-libp2p meanwhile
    # Entries of gone records are swept once they outnumber the store (private state:
    # nothing public shows the bookkeeping, and its growth is the point here).
    assert guard._tracked <= 2 * len(kad.value_store.store) + 2 + 1
    assert len(guard._owned) <= 3


async def test_expired_records_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    kad, _ = _guarded(record_ttl=5.0)
    await _put(kad, "P", _key(1))
    _, expires = kad.value_store.store[_key(1)]
    assert expires <= time.time() + 5.0
    # py-libp2p sweeps every 10 minutes; the guard every CLEANUP_INTERVAL, on a put.
    kad.value_store.store[_key(1)] = (kad.value_store.store[_key(1)][0], time.time() - 1)
    later = time.monotonic() + CLEANUP_INTERVAL + 1
    monkeypatch.setattr("adapters.dht_record_guard.time.monotonic", lambda: later)
    await _put(kad, "P", _key(2))
    assert _key(1) not in kad.value_store.store and _key(2) in kad.value_store.store


async def test_many_publishers_together_keep_a_bounded_store() -> None:
    # Fresh identities are free: the quota per publisher alone bounds nothing.
    kad, guard = _guarded(max_per_publisher=2, max_records=5, other_max_records=2)
    keys = [_key(i) for i in range(8)]
    for i, key in enumerate(keys):
        await _put(kad, f"Sybil{i}", key)
    assert _held(kad, keys) == [False] * 3 + [True] * 5
    others = [_key(i, "pk") for i in range(3)]
    for i, key in enumerate(others):
        await _put(kad, f"Sybil{i}", key)
    assert _held(kad, others) == [False, True, True]
    assert _held(kad, keys[3:]) == [True] * 5  # other namespaces never push ours out
    assert guard.dropped == {"store_full": 4}
    assert guard.live_records("Sybil0") == 0 and guard.live_records("Sybil7") == 1


def test_record_metrics_report_every_reason_from_the_start() -> None:
    registry = CollectorRegistry()
    _, guard = _guarded()
    dht_record_metrics(registry, guard.dropped, RECORD_DROP_REASONS)
    name = "chorus_dht_records_dropped_total"
    assert registry.get_sample_value(name, {"reason": "oversized"}) == 0
    guard.dropped["publisher_quota"] += 2
    assert registry.get_sample_value(name, {"reason": "publisher_quota"}) == 2


# ------------------------------------------------------------------------ fake


async def test_fake_put_reaches_every_peer_and_behaviours_apply() -> None:
    net = InMemoryDHTNetwork()
    a, b, c = net.attach("A"), net.attach("B"), net.attach("C")
    await a.put_value(KEY, b"\x01\x02")

    assert all(net.store_of(p)[KEY] == b"\x01\x02" for p in "ABC")
    assert sorted(a.local_peers()) == ["B", "C"]
    net.set_behaviour("B", PeerBehaviour.CORRUPT)
    net.set_behaviour("C", PeerBehaviour.SILENT)
    assert await a.get_from_peer("B", KEY) == b"\xfe\xfd"
    assert await a.get_from_peer("C", KEY) is None
    assert await c.get_from_peer("C", KEY) == b"\x01\x02"  # a node always reads itself
    assert await b.get_value(KEY) == b"\x01\x02"  # local copy first, untouched


async def test_fake_get_falls_back_to_remote_and_respects_reachability() -> None:
    net = InMemoryDHTNetwork()
    a, b = net.attach("A"), net.attach("B")
    net.store_of("A")[OTHER_KEY] = b"only on A"

    assert await b.get_value(OTHER_KEY) == b"only on A"
    net.set_reachable("A", False)
    assert await b.get_value(OTHER_KEY) is None
    assert await b.get_from_peer("A", OTHER_KEY) is None
    await a.put_value(KEY, b"partitioned")
    assert KEY not in net.store_of("B")
    with pytest.raises(InvalidRecord):
        await a.put_value(KEY, b"x" * 5000)


async def test_fake_put_at_closest_stores_at_that_many_peers_and_not_locally() -> None:
    net = InMemoryDHTNetwork()
    a = net.attach("A")
    for name in "BCDE":
        net.attach(name)
    net.set_behaviour("C", PeerBehaviour.SILENT)
    stored = await a.put_at_closest(KEY, b"v", 3)
    holders = [p for p in "BCDE" if KEY in net.store_of(p)]
    assert sorted(stored) == holders and 2 <= len(holders) <= 3
    assert KEY not in net.store_of("A") and "C" not in stored
    with pytest.raises(InvalidRecord):
        await a.put_at_closest(KEY, b"x" * 5000, 3)


# ------------------------------------------------------------------------ real


@asynccontextmanager
async def _star(
    p2p_config: MakeConfig, names: str, **a_config: Any
) -> AsyncIterator[tuple[P2PNode, tuple[P2PNode, ...]]]:
    """Node "a" (``a_config``: its P2PConfig changes), and one node per name bootstrapped
    to it."""
    async with open_p2p_node(p2p_config("a", **a_config)) as a, AsyncExitStack() as stack:
        boot = (a.listen_addrs[0],)
        others = [
            await stack.enter_async_context(open_p2p_node(p2p_config(n, bootstrap=boot)))
            for n in names
        ]
        yield a, tuple(others)


@pytest.mark.network
async def test_put_at_closest_stores_at_the_closest_peers_only(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with _star(p2p_config, "bcde") as (a, others):
        await wait_until(lambda: len(a.dht.local_peers()) == 4, what="a's table has all four")
        stored = await a.dht.put_at_closest(KEY, b"probe", 2)

        holders = [n.peer_id for n in others if n.kad.value_store.get(KEY.encode())]
        assert sorted(stored) == sorted(holders) and len(holders) == 2
        # The two Kademlia puts it at: nearest to the key by XOR distance.
        target = int.from_bytes(hashlib.sha256(KEY.encode()).digest(), "big")

        def distance(peer_id: str) -> int:
            digest = hashlib.sha256(ID.from_base58(peer_id).to_bytes()).digest()
            return int.from_bytes(digest, "big") ^ target

        assert sorted(holders) == sorted(sorted((n.peer_id for n in others), key=distance)[:2])
        assert a.kad.value_store.get(KEY.encode()) is None  # not kept locally
        for peer_id in stored:
            assert await a.dht.get_from_peer(peer_id, KEY) == b"probe"


@pytest.mark.network
async def test_put_replicates_and_remote_reads_work(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        await wait_until(lambda: b.peer_id in a.dht.local_peers(), what="a's table has b")
        await a.dht.put_value(KEY, b"digest-1")

        # b asks a directly: proves a remote read, not a local one.
        assert await b.dht.get_from_peer(a.peer_id, KEY) == b"digest-1"
        # put_value says nothing about replicas; asking b does (notes, "Kademlia").
        assert await a.dht.get_from_peer(b.peer_id, KEY) == b"digest-1"
        assert await a.dht.get_from_peer(b.peer_id, OTHER_KEY) is None
        # Kept minutes, not py-libp2p's 24 h, by the publisher and by its peers, and never
        # republished (issue 13: a store that does not grow with uptime).
        for node in (a, b):
            _, expires = node.kad.value_store.store[KEY.encode()]
            assert expires <= time.time() + DEFAULT_RECORD_TTL
        assert KEY.encode() not in a.kad.value_store.local_keys

        # c joins after the put, so it has no copy: its get must come from the network.
        async with open_p2p_node(p2p_config("c", bootstrap=(a.listen_addrs[0],))) as c:
            await c.bootstrap_done.wait()
            assert c.kad.value_store.get(KEY.encode()) is None
            assert await c.dht.get_value(KEY) == b"digest-1"
            assert await c.dht.get_value(OTHER_KEY) is None


@pytest.mark.network
async def test_put_at_closest_skips_peers_a_lookup_made_up(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    # A peer asked during the lookup can answer with ids close to the key that nobody
    # runs, at an address that takes a connection and never speaks; py-libp2p puts them
    # in the routing table on that word alone. The probe must still reach real peers.
    async def hold(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, hold, [listener])
        async with _star(p2p_config, "bc", dht_peer_timeout=1.0) as (a, (b, c)):
            await wait_until(lambda: len(a.dht.local_peers()) == 2, what="a's table has both")
            made_up = [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(6)]

            async def hostile_lookup(key: bytes, count: int = 20) -> list[ID]:
                addr = Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
                for fake in made_up:
                    a.host.get_peerstore().add_addrs(fake, [addr], 600)
                    await a.kad.routing_table.add_peer(PeerInfo(fake, [addr]))
                return made_up  # all of them, nearer than any real peer

            a.kad.peer_routing.find_closest_peers_network = hostile_lookup  # type: ignore[method-assign, assignment]
            stored = await a.dht.put_at_closest(KEY, b"probe", 2)
            assert set(made_up) <= set(a.kad.routing_table.get_peer_ids())  # they got in
            assert sorted(stored) == sorted([b.peer_id, c.peer_id])
        nursery.cancel_scope.cancel()


@pytest.mark.network
async def test_oversize_values_are_refused_locally_and_by_peers(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        await b.bootstrap_done.wait()
        with pytest.raises(InvalidRecord):
            await a.dht.put_value(KEY, b"x" * 5000)
        # A peer that skips our checks and sends PUT_VALUE itself is refused by b's
        # validator (without one, py-libp2p stores anything: notes, "Hostile input").
        stored = await a.kad.value_store._store_at_peer(
            ID.from_base58(b.peer_id), KEY.encode(), b"x" * 5000
        )
        assert not stored
        assert b.kad.value_store.get(KEY.encode()) is None


@pytest.mark.network
async def test_get_from_unknown_peer_returns_none(p2p_config: MakeConfig) -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair

    stranger = ID.from_pubkey(create_new_key_pair().public_key).to_base58()
    async with open_p2p_node(p2p_config("a", dht_peer_timeout=2.0)) as a:
        assert await a.dht.get_from_peer(stranger, KEY) is None


@pytest.mark.network
async def test_peers_records_are_bounded_whole_in_every_namespace(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        await b.bootstrap_done.wait()
        store, peer = a.kad.value_store, ID.from_base58(a.peer_id)

        async def put(key: bytes, value: bytes, signature_size: int) -> bool:
            """b sends a PUT_VALUE to a. The signature has no author: py-libp2p 0.8.1
            does not check it then (notes, "Kademlia")."""
            record = Record(key=key, value=value, signature=b"\x00" * signature_size)
            with trio.fail_after(10):
                return bool(await b.kad.value_store._store_at_peer(peer, key, value, record))

        ours = KEY.encode()
        assert not await put(ours, b"tiny", RECORD_OVERHEAD + 4096)
        assert store.get(ours) is None
        assert await put(ours, b"tiny", 64)
        assert store.get(ours) is not None
        # /pk/ (py-libp2p's fallback validator): the key is the hash of the public key
        # in the value. Bounded too, at the IPNS spec's size and then some.
        public_key = create_new_key_pair().public_key
        pk = b"/pk/" + ID.from_pubkey(public_key).to_bytes().hex().encode()
        value = public_key.serialize()
        assert not await put(pk, value, OTHER_MAX_RECORD_SIZE)
        assert store.get(pk) is None
        assert await put(pk, value, 64)
        assert store.get(pk) is not None
        assert a.dht.record_guard.dropped == {"oversized": 2}
        assert a.dht.record_guard.live_records(b.peer_id) == 1
        assert a.dht.record_guard.live_records(b.peer_id, ours=False) == 1
