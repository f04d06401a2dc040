"""The clock and the network model on their own."""

from __future__ import annotations

import functools
import random

from devnet.simulator.events import EventLoop
from devnet.simulator.network import RTO_MIN, LinkModel, Network


def test_callbacks_run_in_time_order_and_ties_in_insertion_order() -> None:
    loop = EventLoop()
    ran: list[str] = []
    loop.at(2.0, lambda: ran.append("b"))
    loop.at(1.0, lambda: ran.append("a1"))
    loop.at(1.0, lambda: ran.append("a2"))
    cancelled = loop.at(1.5, lambda: ran.append("never"))
    cancelled.cancel()
    loop.run_until(1.9)
    assert ran == ["a1", "a2"] and loop.now == 1.9
    loop.run_until(3.0)
    assert ran == ["a1", "a2", "b"]


def test_a_timer_set_in_the_past_fires_now_not_before() -> None:
    loop = EventLoop()
    loop.run_until(5.0)
    seen: list[float] = []
    loop.at(1.0, lambda: seen.append(loop.now))
    loop.run_until(6.0)
    assert seen == [5.0]


def test_a_link_delivers_in_order_and_loss_only_delays() -> None:
    loop = EventLoop()
    net = Network(loop, LinkModel(loss=0.3), random.Random(4), 2)
    got: list[int] = []
    for i in range(200):
        net.send(0, 1, "gossip", 100, functools.partial(got.append, i))
    loop.run_until(60.0)
    assert got == list(range(200))  # TCP: nothing lost, nothing reordered
    assert net.tallies[0].retransmits > 0
    assert net.tallies[0].bytes["gossip"] == 200 * (100 + 80)


def test_a_lost_segment_waits_at_least_the_minimum_rto() -> None:
    loop = EventLoop()
    net = Network(loop, LinkModel(loss=0.999999), random.Random(1), 2)
    assert net.delay(0, 1) >= RTO_MIN


def test_a_partition_swallows_packets_and_a_heal_lets_them_through() -> None:
    loop = EventLoop()
    net = Network(loop, LinkModel(), random.Random(1), 3)
    got: list[str] = []
    net.partition({2: 1})
    net.send(0, 2, "gossip", 10, lambda: got.append("across"))
    net.send(0, 1, "gossip", 10, lambda: got.append("same side"))
    loop.run_until(1.0)
    net.heal()
    net.send(0, 2, "gossip", 10, lambda: got.append("healed"))
    loop.run_until(2.0)
    assert got == ["same side", "healed"]
