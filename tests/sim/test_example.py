"""The example of the README's "Write your own simulation", verbatim, so it keeps working."""

from __future__ import annotations

import pytest

from devnet.testing import ALIVE, DEAD, MeshSnapshot


@pytest.mark.network
async def test_a_crashed_node_is_dead_everywhere_and_comes_back(mesh_network):
    net = await mesh_network(5)  # five real nodes in this process, converged
    victim = net.nodes[2]

    await net.crash(victim)  # no goodbye: its sockets just close
    await net.until(lambda mesh: mesh.all_see(victim, DEAD), what="n2 dead everywhere")
    await net.until_converged()  # the four others still agree on each other

    await net.restart(victim)  # same key, same peer id, same ports
    snap = await net.until_converged()
    assert all(view.state_of(victim) == ALIVE for view in snap.values())
    await net.holds(MeshSnapshot.converged, seconds=2, what="no false alarm afterwards")
