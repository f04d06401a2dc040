"""Hostile peers against real nodes' resources (issue 12, "every peer may be hostile"):
probe-answer streams held open (a slowloris) and DHT records made to take room.

Each attack is first shown against what it targets: one rogue must not starve the honest
peers' probe answers, and must not make a node keep a huge record or an unbounded number
of records. The rogue is a real py-libp2p peer with a key of its own (devnet/rogue.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry

from adapters.dht_record_guard import DEFAULT_MAX_RECORDS_PER_PUBLISHER, RECORD_DROP_REASONS
from adapters.libp2p_link import DEFAULT_MAX_INBOUND, DEFAULT_MAX_INBOUND_PER_PEER, LibP2PLink
from adapters.metrics import dht_record_metrics, probe_stream_metrics
from devnet.rogue import PROBE_TOPIC, open_crowd
from devnet.testing import MeshNetwork, SimNode
from probes.dht_probe import ACTIVE_DHT_CHECK
from probes.enhanced import PUBSUB_ENHANCED
from probes.ports import STREAM_DROP_REASONS, health_key
from probes.probe_wire import ACK_PROTOCOL

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
    # The victim names only n0 and n1, so now none of the rogue's streams is even read.
    count = DEFAULT_MAX_INBOUND + 8
    async with (
        net.rogue(connect_to=[victim]) as rogue,
        rogue.hold_streams(victim, ACK_PROTOCOL, count, data=b'{"v":1,"nonce":') as held,
    ):
        await held.until_ended(count, timeout=10 * net.scale)
        assert link.dropped["unexpected"] == count
        assert link.inbound_from(rogue.peer_id) == 0
        result = await net.run_check(victim, PUBSUB_ENHANCED)
        assert result.healthy, result.message
        assert sorted(result.details["responders_answered"]) == sorted(n.peer_id for n in honest)
        assert link.dropped["per_peer"] == link.dropped["global"] == link.dropped["timeout"] == 0

        registry = CollectorRegistry()
        probe_stream_metrics(registry, link.dropped, STREAM_DROP_REASONS)
        sample = registry.get_sample_value
        name = "chorus_probe_streams_dropped_total"
        assert sample(name, {"reason": "unexpected"}) == count
        assert sample(name, {"reason": "per_peer"}) == 0
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


# --- strangers with many identities (issue 12: identities cost nothing) -------------------
#
# Each attack uses a crowd of minted identities, every one a bare libp2p host with its own
# connection (devnet.rogue.open_crowd), against a cluster that runs an admission policy.
# The prober is n0; n1 and n2 answer it. The verdict is the same each time: the prober's
# critical pubsub-enhanced check passes while the attack goes on.


ANSWERS_DROPPED = "chorus_probe_answers_dropped_total"


async def _cluster_under_attack(mesh_network: Any) -> tuple[MeshNetwork, SimNode, list[SimNode]]:
    """Three admitted nodes; the prober's probes are answered before any attack (so the
    prober is an origin the responders have served, as in any running cluster)."""
    net = await mesh_network(3, admission=True)
    prober, responders = net.nodes[0], net.nodes[1:]
    await _until_probe_subscribers(net, prober, {n.peer_id for n in responders})
    result = await net.run_check(prober, PUBSUB_ENHANCED)
    assert result.healthy, result.message
    return net, prober, responders


async def _honest_checks_pass(net: MeshNetwork, prober: SimNode, times: int) -> None:
    for _ in range(times):
        result = await net.run_check(prober, PUBSUB_ENHANCED)
        assert result.healthy, result.message


async def test_strangers_that_stall_their_answers_do_not_starve_honest_origins(
    mesh_network,
) -> None:
    # Route A: identities that publish probes naming the responders and never finish the
    # answer stream the responders open back (the negotiation hangs, py-libp2p waits
    # 30 s). Before the fix, 2 workers stalled 5 s per answer and the queue of 16 filled:
    # honest probes got queue_full and the prober's critical check failed.
    net, prober, responders = await _cluster_under_attack(mesh_network)
    async with (
        open_crowd(4, connect_to=responders, names=net.names()) as crowd,
        trio.open_nursery() as nursery,
    ):
        crowd.stall(ACK_PROTOCOL)
        nursery.start_soon(partial(crowd.flood_probes, responders, rounds=60, per_second=1.0))
        # 8 s of probes, 4 a second to each responder: enough to fill a queue that drains
        # 0.4 answers a second.
        await crowd.until(lambda: crowd.probes_written >= 64, timeout=20 * net.scale)
        await _honest_checks_pass(net, prober, 3)
        nursery.cancel_scope.cancel()
    assert all(node.live for node in net.nodes)


async def test_many_identities_do_not_drain_the_answer_budget(mesh_network) -> None:
    # Route A': 40 identities, each within its own budget of 1 probe a second, ask each
    # responder 8 times its shared budget of 5 answers a second. Before the fix they
    # spent it, and only a few honest probes were answered.
    net, prober, responders = await _cluster_under_attack(mesh_network)
    async with (
        open_crowd(40, connect_to=responders, names=net.names()) as crowd,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(partial(crowd.flood_probes, responders, rounds=40, per_second=1.0))
        # 3 s of probes first: every identity's burst is spent, the budget drained.
        await crowd.until(lambda: crowd.probes_written >= 240, timeout=20 * net.scale)
        await _honest_checks_pass(net, prober, 3)
        nursery.cancel_scope.cancel()
    # Under the admission policy the node's responders answer members only: the crowd's
    # probes were refused as unwanted before any budget.
    for responder in responders:
        assert await net.metric(responder, ANSWERS_DROPPED, reason="unwanted") >= 40
        assert await net.metric(responder, ANSWERS_DROPPED, reason="new_origins") == 0
    assert all(node.live for node in net.nodes)


async def test_many_identities_holding_answer_streams_do_not_starve_the_prober(
    mesh_network,
) -> None:
    # Route B: 8 identities x 4 streams, each identity within the per-peer limit, held all
    # 32 of the prober's answer-stream slots for its read timeout: the named responders'
    # answers were reset as "global" and the probe failed.
    net, prober, _ = await _cluster_under_attack(mesh_network)
    link = _answer_link(prober)
    identities, per_identity = 8, DEFAULT_MAX_INBOUND_PER_PEER
    count = identities * per_identity
    assert count >= DEFAULT_MAX_INBOUND
    async with (
        open_crowd(identities, connect_to=[prober], names=net.names()) as crowd,
        crowd.hold_streams(prober, ACK_PROTOCOL, per_identity, data=b'{"v":1,"nonce":') as held,
    ):

        def settled() -> bool:
            # Every stream is either refused or holding a slot: the attack is in place.
            holding = sum(link.inbound_from(peer) for peer in crowd.peer_ids)
            return held.attempted == count and holding + held.ended >= count

        with trio.fail_after(10 * net.scale):
            # Polling: the prober takes or refuses a slot with nothing to wait on here.
            while not settled():  # noqa: ASYNC110
                await trio.sleep(0.02)
        await _honest_checks_pass(net, prober, 1)
        assert link.dropped["unexpected"] == count
        assert link.dropped["global"] == link.dropped["per_peer"] == 0
    assert all(node.live for node in net.nodes)
