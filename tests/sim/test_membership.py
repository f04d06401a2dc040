"""Membership scenarios on in-process nodes: convergence, crash, leave and restart.

Every node is a whole chorus-health node (devnet/testing.py, compact configuration: the
devnet cluster timings, active probes off) on a sparse ring (four links each up to ten
nodes, two beyond), so gossip has to be relayed. Bounds are the design's detection times
(mesh/cluster_config.py, devnet preset) with a wide margin for a shared 2-core machine;
the waits return as soon as the outcome holds.
"""

from __future__ import annotations

import pytest

from devnet.testing import ALIVE, DEAD, LEFT, SUSPECT, MeshNetwork, MeshSnapshot, SimNode

pytestmark = pytest.mark.network


def _members(snap: MeshSnapshot) -> set[frozenset[str]]:
    """The set of distinct member lists held by the views (one when they agree)."""
    return {frozenset(view.peers) for view in snap.values()}


def _admins(snap: MeshSnapshot) -> set[str | None]:
    return {view.admin for view in snap.values()}


def _states(snap: MeshSnapshot, peer: SimNode) -> set[str | None]:
    return {view.state_of(peer) for view in snap.values() if view.node_id != peer.peer_id}


def _agreed(snap: MeshSnapshot) -> bool:
    """Converged, and every view elects the same admin (members report healthy)."""
    admins = _admins(snap)
    return snap.converged() and len(admins) == 1 and None not in admins


async def _assert_agreement(net: MeshNetwork) -> MeshSnapshot:
    """Every live node lists the same members, all alive, and elects the same admin."""
    snap = await net.until(_agreed, what="every view alive and agreeing on the admin")
    ids = {node.peer_id for node in net.live}
    assert all(view.alive == ids for view in snap.values())
    return snap


@pytest.mark.parametrize(
    "count", [10, pytest.param(20, marks=pytest.mark.slow)], ids=["10-nodes", "20-nodes"]
)
async def test_nodes_converge_over_a_sparse_topology(mesh_network, count: int) -> None:
    net = await mesh_network(count)

    snap = await _assert_agreement(net)
    assert len(snap) == count
    assert _members(snap) == {frozenset(n.peer_id for n in net.nodes)}
    # Sparse: four links each, so most members were heard of through relays.
    degrees = [len(n.handle.p2p.connected_peers()) for n in net.nodes]
    assert max(degrees) <= 4, degrees
    # And it stays converged: no false suspicion while nothing happens.
    await net.holds(MeshSnapshot.converged, seconds=5, what="a quiet mesh stays converged")


async def test_crashed_node_turns_dead_everywhere_and_the_rest_agree(mesh_network) -> None:
    net = await mesh_network(10)
    victim = net.nodes[4]

    await net.crash(victim)
    # Disconnect ~0.2 s, then suspicion: 2.6 s once two others confirm, 7.8 s alone.
    snap = await net.until(lambda m: m.all_see(victim, DEAD), what="n4 dead everywhere")
    for view in snap.values():
        peer = view.peer(victim)
        assert peer is not None and peer.ever(SUSPECT) and not peer.ever(LEFT)
    await _assert_agreement(net)


async def test_a_crashed_nodes_refused_port_is_its_death_everywhere(mesh_network) -> None:
    # Its port refuses a dial-back: dead after the grace, not the suspicion timeout. Only
    # nodes that have met it may dial it back (adapters/dialback.py); the rest wait out
    # the suspicion (rule 7).
    net = await mesh_network(8)
    victim = net.nodes[3]
    addrs = victim.handle.p2p.listen_addrs
    dialled = {n.name for n in net.nodes if n.handle.p2p.dial_back_target(victim.peer_id, addrs)}
    assert len(dialled) >= 2

    await net.crash(victim)
    snap = await net.until(lambda m: m.all_see(victim, DEAD), what="n3 dead everywhere")
    for node in net.live:
        peer = snap[node].peer(victim)
        assert peer is not None
        (death,) = [e for e in peer.history if e.get("to") == DEAD]
        refused = "dial-back refused" in death.get("detail", "")
        assert refused == (node.name in dialled), (node.name, death)


async def test_several_nodes_crashing_at_once_are_all_dead(mesh_network) -> None:
    net = await mesh_network(10)
    victims = [net.nodes[i] for i in (1, 2, 6)]  # two neighbours and one across the ring

    await net.crash(*victims)
    await net.until(
        lambda m: all(m.all_see(v, DEAD) for v in victims), what="three crashed nodes dead"
    )
    snap = await _assert_agreement(net)
    assert all(view.with_state(DEAD) == {v.peer_id for v in victims} for view in snap.values())


async def test_leaving_nodes_turn_left_never_dead(mesh_network) -> None:
    net = await mesh_network(10)
    first, *together = net.nodes[3], net.nodes[7], net.nodes[8]

    await net.leave(first)
    await net.until(lambda m: m.all_see(first, LEFT), timeout=10, what="n3 left everywhere")
    await net.leave(*together)
    snap = await net.until(
        lambda m: all(m.all_see(n, LEFT) for n in together), timeout=10, what="n7, n8 left"
    )
    for node in (first, *together):
        for view in snap.values():
            peer = view.peer(node)
            assert peer is not None and not peer.ever(DEAD), (view.node, node.name)
    await _assert_agreement(net)


async def test_restarted_nodes_come_back_alive_with_the_same_identity(mesh_network) -> None:
    net = await mesh_network(8)
    single, pair = net.nodes[2], [net.nodes[5], net.nodes[6]]
    old_ids = {n.name: n.peer_id for n in net.nodes}
    before = await net.snapshot()
    started = {n.name: before[net.nodes[0]].peer(n).start_time for n in (single, *pair)}

    await net.crash(single, *pair)
    await net.until(
        lambda m: all(m.all_see(n, (SUSPECT, DEAD)) for n in (single, *pair)),
        what="the crashed nodes suspected",
    )
    await net.restart(single)
    await net.restart(*pair)

    snap = await _assert_agreement(net)
    assert {n.name: n.peer_id for n in net.nodes} == old_ids
    for node in (single, *pair):
        assert node.lives == 2
        for view in snap.values():
            peer = view.peer(node)
            assert peer is not None and peer.state == ALIVE
            if view.node not in started:  # an observer that lived through it
                assert peer.start_time > started[node.name]  # a new life, seen as such
                causes = [entry["cause"] for entry in peer.history]
                assert "restarted" in causes, (view.node, peer.history)


async def test_a_crashed_node_answers_nothing_about_its_closed_listeners(mesh_network) -> None:
    """A crash closes the node's listeners before it cancels the node. Anything that asks
    the host for its addresses meanwhile (a peer's identify request does) must get an
    answer, not EBADF from a closed socket: that error once crashed the whole node."""
    import trio

    net = await mesh_network(2)
    victim = net.nodes[0]
    assert victim.handle is not None
    host = victim.handle.p2p.host
    errors: list[BaseException] = []
    crashed = trio.Event()

    async def ask_for_addresses() -> None:
        while not crashed.is_set():
            try:
                host.get_addrs()
            except OSError as exc:
                errors.append(exc)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_for_addresses)
        await trio.lowlevel.checkpoint()
        await net.crash(victim)
        crashed.set()
    assert victim.error is None
    assert errors == []
