"""Measured ping timeouts on real nodes (``adapters/link_timing.py``), and production's
patience with a slow node.

Late answers stretch the view's timeouts where the network score is on; with measured
timeouts (``P2PConfig.ping_timeout_floor``; both off as the node ships) a node
waits for each peer's ping answer as long as that peer's own answers say (srtt + 4 rttvar,
from the floor up to 2 s): a frozen process is failed at the floor. The observers run in
this test's event loop, the watched node in a process of its own.
"""

from __future__ import annotations

import pytest

from adapters.link_timing import LinkTiming
from adapters.p2p_config import MEASURED_PING_FLOOR, P2PConfig
from devnet.testing import DEAD

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def test_a_frozen_node_is_failed_at_its_measured_timeout(mesh_network) -> None:
    net = await mesh_network(3, processes=1, profile="production", inprocess_ping_timeout=None)
    frozen, observers = net.nodes[3], net.nodes[:3]
    for node in observers:
        node.handle.p2p.pinger.timing = LinkTiming(
            floor=MEASURED_PING_FLOOR,
            ceiling=P2PConfig.ping_timeout,
            slow=P2PConfig.ping_slow_answer,
        )
    linked = [n for n in observers if frozen.peer_id in n.handle.p2p.connected_peers()]
    assert linked, "no observer is linked to the process node"

    def measured(_: object) -> bool:
        # Quick answers on loopback: the timeout of each linked observer is at its floor.
        timings = [n.handle.p2p.pinger.timing for n in linked]
        return all(
            t is not None and t.timeout(frozen.peer_id) == MEASURED_PING_FLOOR for t in timings
        )

    await net.until(measured, what="observers measured the process node's answers")
    failed_before = {n.name: n.handle.p2p.pinger.failed for n in linked}
    async with net.frozen(frozen):
        await net.until(
            lambda m: m.all_see(frozen, DEAD, observers=observers), what="frozen node dead"
        )
        # Somebody's own ping failed: the suspicion did not rest on silence alone.
        assert any(n.handle.p2p.pinger.failed > failed_before[n.name] for n in linked)
    await net.until_converged()


async def test_late_answers_stretch_the_observers_timeouts(mesh_network) -> None:
    # With the network score on (P2PConfig.ping_network_awareness, as p2p_node builds
    # it): the answers of a node that runs one second in three come late, and the view
    # of its observer, which pings no one else, gives every suspicion and silence more
    # time.
    net = await mesh_network(1, processes=1, profile="production", inprocess_ping_timeout=None)
    slow, observers = net.nodes[1], net.nodes[:1]
    for node in observers:
        assert node.handle is not None and node.handle.p2p.pinger.timing is None  # off
        node.handle.p2p.pinger.timing = LinkTiming(
            floor=P2PConfig.ping_timeout,
            ceiling=P2PConfig.ping_timeout,
            slow=P2PConfig.ping_slow_answer,
            measures=False,
        )

    def stretched(_: object) -> bool:
        # The network score's part of the multiplier: beyond what our own local health
        # gives (the observer's loop may lag too on a loaded machine, and that is not it).
        return any(
            n.handle is not None
            and n.handle.gossip.view.multiplier > n.handle.gossip.view.local_health + 1
            for n in observers
        )

    # A late answer counts +1 and a timely one -1, so the score climbs only in a run of
    # late ones: 4-31 s on an idle machine, and once over the default 33 s under CI load.
    async with net.starved(slow, stopped=1.0, period=1.5):
        await net.until(
            stretched, timeout=90, what="an observer's timeouts stretched by late answers"
        )


async def test_a_slow_node_that_still_answers_lives(mesh_network) -> None:
    # The production profile as it ships. Stopped 1 s of every 1.5 s: many of its
    # answers come late; it says it is alive whenever it runs, and must stay alive.
    net = await mesh_network(3, processes=1, profile="production", inprocess_ping_timeout=None)
    slow, observers = net.nodes[3], net.nodes[:3]
    async with net.starved(slow, stopped=1.0, period=1.5):
        await net.holds(
            lambda m: not any(m[o].state_of(slow) == DEAD for o in observers),
            seconds=10,
            what="the slow node never dead",
        )
    await net.until_converged()
