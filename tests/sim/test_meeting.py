"""Meeting members (GossipTuning.meet_links, issue 13): a node dials each member it hears
of once, so that it can dial a crashed member back itself instead of waiting out a
suspicion raised by others. In-process nodes on a chain: only the ends' neighbours are
linked by the topology."""

from __future__ import annotations

import pytest

from devnet.testing import DEAD, MeshNetwork

pytestmark = pytest.mark.network


def _degrees(net: MeshNetwork) -> list[int]:
    return [len(n.handle.p2p.connected_peers()) for n in net.live if n.handle is not None]


async def test_nodes_meet_every_member_and_dial_a_crashed_one_back_themselves(
    mesh_network,
) -> None:
    net = await mesh_network(4, topology="chain", meet_links=8)
    await net.until(lambda _: _degrees(net) == [3, 3, 3, 3], what="every node linked to all")
    far_end, victim = net.nodes[3], net.nodes[0]

    await net.crash(victim)
    # The far end never had a topology link to the victim: only its own link, made by
    # meeting, gives it an address to dial back, and the kernel's refusal.
    await net.until_metric(
        far_end, "chorus_gossip_dialbacks_total", lambda v: v >= 1, result="refused"
    )
    await net.until(lambda m: m.all_see(victim, DEAD), what="n0 dead everywhere")


async def test_meeting_is_off_in_the_toolkit_so_topologies_stay_as_drawn(mesh_network) -> None:
    net = await mesh_network(4, topology="chain")
    snap = await net.snapshot()
    assert snap.converged()
    assert sorted(_degrees(net)) == [1, 1, 2, 2]
