"""Hostile peers against real nodes' resources (issue 12, "every peer may be hostile"):
probe-answer streams held open (a slowloris) and DHT records made to take room.

Each attack is first shown against what it targets: one rogue must not starve the honest
peers' probe answers, and must not make a node keep a huge record or an unbounded number
of records. The rogue is a real py-libp2p peer with a key of its own (devnet/rogue.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry

from adapters.dht import DEFAULT_MAX_RECORDS_PER_PUBLISHER, RECORD_DROP_REASONS, health_key
from adapters.metrics import dht_record_metrics, probe_stream_metrics
from devnet.rogue import PROBE_TOPIC
from devnet.testing import MeshNetwork, SimNode
from probes.dht_probe import ACTIVE_DHT_CHECK
from probes.enhanced import PUBSUB_ENHANCED
from probes.pubsub_probe import (
    ACK_PROTOCOL,
    DEFAULT_MAX_INBOUND,
    DEFAULT_MAX_INBOUND_PER_PEER,
    STREAM_DROP_REASONS,
    LibP2PLink,
)

pytestmark = pytest.mark.network


def _answer_link(node: SimNode) -> LibP2PLink:
    """The victim's link that reads probe answers: the enhanced check's probe holds it."""
    assert node.handle is not None
    checker: Any = node.handle.manager.get(PUBSUB_ENHANCED).checker
    link = checker.__self__.pubsub_probe.link
    assert isinstance(link, LibP2PLink)
    return link


async def _until_probe_subscribers(net: MeshNetwork, node: SimNode, peers: set[str]) -> None:
    """Until ``node``'s GossipSub knows that ``peers`` subscribe to the probe topic (the
    probe names only those)."""
    assert node.handle is not None
    topics = node.handle.p2p.guarded_pubsub.peer_topics
    with trio.fail_after(10 * net.scale):
        # Polling: py-libp2p has no event for a peer's subscription.
        while not peers <= {p.to_base58() for p in topics.get(PROBE_TOPIC, ())}:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_one_peer_holding_answer_streams_does_not_starve_honest_answers(
    mesh_network,
) -> None:
    net = await mesh_network(3)
    # The victim's honest peers are n0 and n1: the probe names both (k = 3).
    honest = [net.nodes[0], net.nodes[1]]
    victim = await net.add_node(links=honest)
    link = _answer_link(victim)
    await _until_probe_subscribers(net, victim, {n.peer_id for n in honest})
    # More streams than the victim reads at once in all: before per-peer limits, one peer
    # holding them kept every honest answer out (the answers were reset as "too many").
    count = DEFAULT_MAX_INBOUND + 8
    async with (
        net.rogue(connect_to=[victim]) as rogue,
        rogue.hold_streams(victim, ACK_PROTOCOL, count, data=b'{"v":1,"nonce":') as held,
    ):
        # A victim refuses a stream only once the others fill what it reads at once: from
        # the first refusal on, the probe below runs against a victim holding them.
        await held.until_ended(1, timeout=10 * net.scale)
        result = await net.run_check(victim, PUBSUB_ENHANCED)
        assert result.healthy, result.message
        assert sorted(result.details["responders_answered"]) == sorted(n.peer_id for n in honest)
        # All but the rogue's share were refused at once, as over its share; none for
        # want of a global slot, which the honest answers took.
        refused = count - DEFAULT_MAX_INBOUND_PER_PEER
        await held.until_ended(refused, timeout=10 * net.scale)
        assert link.dropped["per_peer"] == refused
        assert link.dropped["global"] == 0
        assert link.inbound_from(rogue.peer_id) <= DEFAULT_MAX_INBOUND_PER_PEER

        registry = CollectorRegistry()
        probe_stream_metrics(registry, link.dropped, STREAM_DROP_REASONS)
        sample = registry.get_sample_value
        name = "chorus_probe_streams_dropped_total"
        assert sample(name, {"reason": "per_peer"}) == refused
        assert sample(name, {"reason": "global"}) == 0

        # The streams it kept are stalled: the read timeout takes them back.
        await held.until_ended(count, timeout=30 * net.scale)
        assert link.dropped["timeout"] == DEFAULT_MAX_INBOUND_PER_PEER
        with trio.fail_after(10 * net.scale):
            # Polling: the victim frees a slot just after its reset reaches the rogue.
            while link.inbound_from(rogue.peer_id):  # noqa: ASYNC110
                await trio.sleep(0.02)
    assert all(node.live for node in net.nodes)


async def test_oversized_and_excess_dht_records_are_not_kept(mesh_network) -> None:
    net = await mesh_network(3)
    # n2 dialled n0 and n1, so both are in its Kademlia routing table: its probe puts on
    # and reads back from the victim, n0.
    victim, honest = net.nodes[0], net.nodes[2]
    assert victim.handle is not None
    store = victim.handle.p2p.kad.value_store
    guard = victim.handle.p2p.dht.record_guard
    async with net.rogue(connect_to=[victim]) as rogue:
        first = health_key("00" * 16)
        # A 4-byte value with a 900 KB signature and no author: py-libp2p checks the
        # signature only with an author, and its validator sees only key and value.
        assert not await rogue.put_dht(victim, first, b"tiny", signature=b"\x00" * 900_000)
        assert store.get(first.encode()) is None
        assert guard.dropped["oversized"] == 1
        # The same record with a signature of a normal size is kept: it was the size.
        assert await rogue.put_dht(victim, first, b"tiny", signature=b"\x00" * 64)
        assert store.get(first.encode()) is not None

        # More records than one publisher may keep: each new one drops its oldest.
        extra = 8
        keys = [first] + [
            health_key(f"{i + 1:032x}") for i in range(DEFAULT_MAX_RECORDS_PER_PUBLISHER + extra)
        ]
        with trio.fail_after(60 * net.scale):  # bounded: 72 puts, one at a time
            for key in keys[1:]:
                assert await rogue.put_dht(victim, key, b"v")
        kept = [store.get(key.encode()) is not None for key in keys]
        dropped = len(keys) - DEFAULT_MAX_RECORDS_PER_PUBLISHER
        assert kept == [False] * dropped + [True] * DEFAULT_MAX_RECORDS_PER_PUBLISHER
        assert guard.live_records(rogue.peer_id) == DEFAULT_MAX_RECORDS_PER_PUBLISHER
        assert guard.dropped["publisher_quota"] == dropped

        # An honest node's DHT probe still works, and its record is kept by the victim.
        result = await net.run_check(honest, ACTIVE_DHT_CHECK)
        assert result.healthy, result.message
        assert store.get(result.details["key"].encode()) is not None
        assert guard.live_records(honest.peer_id) >= 1

        registry = CollectorRegistry()
        dht_record_metrics(registry, guard.dropped, RECORD_DROP_REASONS)
        name = "chorus_dht_records_dropped_total"
        assert registry.get_sample_value(name, {"reason": "oversized"}) == 1
        assert registry.get_sample_value(name, {"reason": "publisher_quota"}) == dropped
    assert all(node.live for node in net.nodes)
