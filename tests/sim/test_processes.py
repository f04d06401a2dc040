"""Faults that need a node in an OS process of its own: freezing and CPU starvation.

The process nodes run the product's own entry point (``python -m adapters.cli``) with the
simulation's compact configuration; the others run in this test's event loop and are the
observers. A frozen node is SIGSTOPped: its sockets stay open, it answers nothing. A
starved node is SIGSTOPped for most of every period (CPU throttling's pattern): it runs,
late, and its own event-loop lag monitor says so.
"""

from __future__ import annotations

import pytest
import trio

from devnet.testing import ALIVE, DEAD, SUSPECT, MeshSnapshot

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def test_frozen_nodes_are_dead_everywhere_then_alive_when_thawed(mesh_network) -> None:
    net = await mesh_network(4, processes=2)
    single, other = net.nodes[4], net.nodes[5]
    observers = net.nodes[:4]

    # One frozen node: libp2p's health monitor notices in about 1.4 s, then suspicion.
    async with net.frozen(single):
        await net.until(
            lambda m: m.all_see(single, DEAD, observers=observers), what="frozen n4 dead"
        )
    await net.until_converged()

    # Two at once.
    async with net.frozen(single, other):
        snap = await net.until(
            lambda m: (
                m.all_see(single, DEAD, observers=observers)
                and m.all_see(other, DEAD, observers=observers)
            ),
            what="both frozen nodes dead",
        )
        for node in observers:
            assert snap[node].alive == {n.peer_id for n in observers}
    snap = await net.until_converged()
    for view in snap.values():
        assert view.state_of(single) == view.state_of(other) == ALIVE
    for node in observers:  # the two frozen together could not see each other die
        for frozen in (single, other):
            assert snap[node].peer(frozen).ever(DEAD)
    # The thawed processes are the same lives: they were never restarted.
    assert single.lives == other.lives == 1


SILENCE_AT_SIX = 4.5  # seconds: 3 refreshes of 1.5 s (devnet preset, six nodes)


async def test_starved_node_does_not_declare_the_others_dead(mesh_network) -> None:
    net = await mesh_network(5, processes=1)
    starved, others = net.nodes[5], net.nodes[:5]
    dead_seen: set[str] = set()
    max_lag = 0.0

    # Stopped 6 s of every 7: longer than the silence timeout (SILENCE_AT_SIX) and than
    # every ping timeout, so on each wake-up the starved node finds the others silent.
    # It must not condemn them (Lifeguard).
    async with net.starved(starved, stopped=6.0, period=7.0):
        with trio.move_on_after(21):
            while True:
                # Its view, whenever it gets to answer (the HTTP read waits up to 5 s).
                try:
                    view = await net.view(starved)
                    dead_seen |= {p for p in view.with_state(DEAD) if p != starved.peer_id}
                    lag = await net.metric(starved, "chorus_event_loop_lag_seconds")
                    max_lag = max(max_lag, lag)
                except OSError:
                    pass
                await trio.sleep(0.5)

    # It was starved by its own measure, for longer than the silence timeout: every
    # other node was silent to it for over 4.5 s at a time, which would suspect them all
    # were its own lateness not taken into account (Lifeguard's local health)...
    assert max_lag > SILENCE_AT_SIX, max_lag
    await net.until_converged()
    view = await net.view(starved)
    # ...and never took its own lateness for their death.
    assert not dead_seen, [net.node(p).name for p in dead_seen]
    for peer in others:
        assert not view.peer(peer).ever(DEAD), (peer.name, view.peer(peer).history)
    await net.holds(MeshSnapshot.converged, seconds=3, what="converged after starvation")


async def test_a_suspicion_sends_every_observer_to_ping_the_suspect_itself(mesh_network) -> None:
    # SWIM's indirect probe, as each observer asking for itself (adapters/dialback.py).
    # Only the accuser pings in turn; the others' round-robin pings are off, so a ping of
    # theirs that fails can only be one they sent on hearing the accuser's suspicion.
    net = await mesh_network(4, processes=1, inprocess_ping_timeout=2.0)
    frozen = net.nodes[4]
    linked = [n for n in net.nodes[:4] if frozen.peer_id in n.handle.p2p.connected_peers()]
    assert len(linked) >= 2, [n.name for n in linked]
    accuser, quiet = linked[0], linked[1:]
    for node in quiet:
        node.handle.p2p.pinger.interval = 1e6

    def unanswered(node) -> int:
        # A ping that failed while the observer's own loop lagged is counted as ignored,
        # not failed (adapters/pinger.py): either way it was sent, and not answered.
        return node.handle.p2p.pinger.failed + node.handle.p2p.pinger.ignored

    failed_before = {n.name: unanswered(n) for n in quiet}

    async with net.frozen(frozen):
        await net.until(
            lambda m: m[accuser].state_of(frozen) in (SUSPECT, DEAD), what="accuser suspects"
        )
        await net.until(
            lambda m: all(unanswered(n) > failed_before[n.name] for n in quiet),
            what="every quiet observer pinged the suspect and was not answered",
        )
        await net.until(
            lambda m: m.all_see(frozen, DEAD, observers=net.nodes[:4]), what="frozen n4 dead"
        )
    await net.until_converged()
