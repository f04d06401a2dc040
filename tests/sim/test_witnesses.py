"""Rule 7's witnesses on real nodes: a crash reaches members that hold no link to it.

Five in-process nodes, the victim linked to two of them only. The two see its connections
close and dial it back: refused. The other two have not met it. In a cluster whose
members a cluster authority certifies they dial it where its signed digest says it
listens; where they may not (here: no advertised address passes ``dialable_ip``), they
take the two refusals as their own. In an open cluster they wait out the suspicion.
"""

from __future__ import annotations

import pytest

from adapters import p2p_node
from devnet.testing import DEAD, MeshNetwork, SimNode
from mesh.cluster_transitions import Transition
from mesh.messages import MemberState

pytestmark = pytest.mark.network

# 0 is the victim, linked to 1 and 2; 3 and 4 reach it only through them.
EDGES = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (1, 4)]


def _death(observer: SimNode, victim: SimNode) -> tuple[Transition, Transition]:
    """The observer's last SUSPECT and DEAD transitions of the victim."""
    assert observer.handle is not None
    history = observer.handle.gossip.view.history(peer=victim.peer_id)
    dead = next(t for t in history if t.to_state is MemberState.DEAD)
    suspect = next(t for t in history if t.to_state is MemberState.SUSPECT and t.at <= dead.at)
    return suspect, dead


async def _crash_the_victim(net: MeshNetwork) -> SimNode:
    victim = net.nodes[0]
    linked = {
        n.name for n in net.nodes if n.handle and victim.peer_id in n.handle.p2p.connected_peers()
    }
    assert linked == {net.nodes[1].name, net.nodes[2].name}  # the test's premise
    await net.crash(victim)
    await net.until(lambda mesh: mesh.all_see(victim, DEAD), what="the victim dead everywhere")
    return victim


async def test_certified_members_dial_back_a_member_they_never_met(mesh_network) -> None:
    net = await mesh_network(5, topology=EDGES, admission=True)
    victim = await _crash_the_victim(net)
    for observer in net.nodes[1:]:
        assert "our dial-back refused" in _death(observer, victim)[1].detail


async def test_certified_members_take_two_witnesses_refusals_as_their_own(
    mesh_network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p2p_node, "dialable_ip", lambda ip, loopback: False)
    net = await mesh_network(5, topology=EDGES, admission=True)
    victim = await _crash_the_victim(net)
    config = net.nodes[3].handle.gossip.view.config  # type: ignore[union-attr]
    for far in net.nodes[3:]:
        suspect, dead = _death(far, victim)
        assert "2 witnesses' dials refused" in dead.detail, dead.detail
        # Long before the suspicion could have run out on its own (rule 7).
        assert dead.at - suspect.at < config.suspicion_timeout(5, 4)
    for near in net.nodes[1:3]:
        assert "our dial-back refused" in _death(near, victim)[1].detail


async def test_an_open_cluster_trusts_no_witness(mesh_network) -> None:
    net = await mesh_network(5, topology=EDGES)
    assert net.nodes[3].handle.gossip.view.config.refusal_witnesses == 0  # type: ignore[union-attr]
    victim = await _crash_the_victim(net)
    config = net.nodes[3].handle.gossip.view.config  # type: ignore[union-attr]
    for far in net.nodes[3:]:
        suspect, dead = _death(far, victim)
        assert "witness" not in dead.detail, dead.detail
        # No earlier than the fewest-confirmations bound allows.
        assert dead.at - suspect.at >= config.suspicion_timeout(5, 4) - 0.01
