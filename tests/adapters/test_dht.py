"""DHT: the record validator, the in-memory fake, and LibP2PDHT over real Kademlia."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from libp2p.peer.id import ID

from adapters.dht import (
    HealthRecordValidator,
    InMemoryDHTNetwork,
    InvalidRecord,
    PeerBehaviour,
    health_key,
)
from adapters.libp2p_host import P2PConfig, open_p2p_node
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


def test_health_key_rejects_bad_ids() -> None:
    assert KEY == "/chorus-health/0123456789abcdef0123456789abcdef"
    with pytest.raises(InvalidRecord):
        health_key("not hex")


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


# ------------------------------------------------------------------------ real


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

        # c joins after the put, so it has no copy: its get must come from the network.
        async with open_p2p_node(p2p_config("c", bootstrap=(a.listen_addrs[0],))) as c:
            await c.bootstrap_done.wait()
            assert c.kad.value_store.get(KEY.encode()) is None
            assert await c.dht.get_value(KEY) == b"digest-1"
            assert await c.dht.get_value(OTHER_KEY) is None


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
