"""Production's measured ping timeouts on real nodes (``adapters/link_timing.py``).

The production profile waits for each peer's ping answer as long as that peer's own
answers say (srtt + 4 rttvar, from 0.5 s up to 2 s), and answers later than 200 ms
stretch the view's timeouts. A frozen process is then found at the floor; a slow one that
still answers must live. The observers run in this test's event loop, the watched node in
a process of its own.
"""

from __future__ import annotations

import pytest

from adapters.node_settings import PRODUCTION_PING_FLOOR
from devnet.testing import DEAD

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def test_a_frozen_node_is_failed_at_its_measured_timeout(mesh_network) -> None:
    net = await mesh_network(3, processes=1, profile="production", inprocess_ping_timeout=None)
    frozen, observers = net.nodes[3], net.nodes[:3]
    linked = [n for n in observers if frozen.peer_id in n.handle.p2p.connected_peers()]
    assert linked, "no observer is linked to the process node"

    def measured(_: object) -> bool:
        # Quick answers on loopback: the timeout of each linked observer is at its floor.
        timings = [n.handle.p2p.pinger.timing for n in linked]
        return all(
            t is not None and t.timeout(frozen.peer_id) == PRODUCTION_PING_FLOOR for t in timings
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


async def test_a_slow_node_that_still_answers_lives(mesh_network) -> None:
    # Stopped 1 s of every 1.5 s: many of its answers come after the 0.5 s floor, the
    # rest late. Its observers' suspicions must give it time to refute: late answers
    # stretch their timeouts (the network score), and it says it is alive whenever it runs.
    net = await mesh_network(3, processes=1, profile="production", inprocess_ping_timeout=None)
    slow, observers = net.nodes[3], net.nodes[:3]
    async with net.starved(slow, stopped=1.0, period=1.5):
        await net.holds(
            lambda m: not any(m[o].state_of(slow) == DEAD for o in observers),
            seconds=20,
            what="the slow node never dead",
        )
    await net.until_converged()
