"""LinkPinger's schedule and judgement, with a fake network and a mock clock."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from adapters.link_timing import LinkTiming
from adapters.pinger import LinkPinger
from adapters.tcp_witness import TcpState

PEERS = [ID(f"peer-{i}".encode()) for i in range(4)]


class FakeNetwork:
    """Only what LinkPinger reads: ``connections``, peer -> list of connections."""

    def __init__(self, peers: list[ID]) -> None:
        self.connections: dict[ID, list[Any]] = {peer: [peer] for peer in peers}


def pinger_for(
    network: FakeNetwork,
    answers: dict[ID, bool],
    rtts: dict[ID, float] | None = None,
    waited: list[float] | None = None,
) -> tuple[LinkPinger, list[ID]]:
    """A pinger whose pings are answered after ``rtts[peer]`` (0 by default), or never if
    ``answers[peer]`` is False; ``waited`` collects each ping's timeout."""
    pinger = LinkPinger(network, interval=0.5, timeout=2.0)  # type: ignore[arg-type]
    pinger.clock_offset = 0.0
    pinged: list[ID] = []
    rtts = {} if rtts is None else rtts
    waited = [] if waited is None else waited

    async def ping(conn: Any, timeout: float | None = None, early: float | None = None) -> bool:
        pinged.append(conn)
        waited.append(pinger.timeout if timeout is None else timeout)
        if answers.get(conn, True):
            await trio.sleep(rtts.get(conn, 0.0))
            return True
        await trio.sleep(waited[-1])
        return False

    pinger.ping = ping  # type: ignore[method-assign]
    return pinger, pinged


def test_each_round_pings_every_connected_peer_once() -> None:
    network = FakeNetwork(PEERS)
    pinger, _ = pinger_for(network, {})
    first = [pinger.next_peer(tick) for tick in range(4)]
    second = [pinger.next_peer(tick) for tick in range(4, 8)]
    assert sorted(first, key=str) == sorted(second, key=str) == sorted(PEERS, key=str)
    # A peer that disconnected is skipped; one that connected takes its turn.
    del network.connections[PEERS[0]]
    network.connections[ID(b"late")] = [ID(b"late")]
    third = {pinger.next_peer(tick) for tick in range(8, 12)}
    assert third == {*PEERS[1:], ID(b"late")}


class NamedNetwork(FakeNetwork):
    def __init__(self, me: ID, peers: list[ID]) -> None:
        super().__init__([p for p in peers if p != me])
        self._me = me

    def get_peer_id(self) -> ID:
        return self._me


def test_at_each_tick_every_member_is_pinged_by_exactly_one_other() -> None:
    # Every node sees all the others: a frozen member is pinged within one interval.
    members = [ID(f"member-{i}".encode()) for i in range(7)]
    pingers = [LinkPinger(NamedNetwork(m, members), interval=0.5, timeout=2.0) for m in members]  # type: ignore[arg-type]
    for tick in range(100, 120):
        targets = [p.next_peer(tick) for p in pingers]
        assert sorted(targets, key=str) == sorted(members, key=str)
        assert all(t != m for t, m in zip(targets, members, strict=True))


def test_a_peer_with_a_ping_in_flight_passes_its_turn_to_the_next() -> None:
    pinger, _ = pinger_for(FakeNetwork(PEERS), {})
    turn = pinger.next_peer(5)
    assert turn is not None
    pinger._in_flight.add(turn)
    assert pinger.next_peer(5) not in (turn, None)
    pinger._in_flight.update(PEERS)
    assert pinger.next_peer(5) is None


async def test_pings_go_out_at_the_ticks_of_the_wall_clock(
    autojump_clock: trio.abc.Clock,
) -> None:
    pinger, _ = pinger_for(FakeNetwork(PEERS), {})
    sent_at: list[float] = []
    ping = pinger.ping

    async def timed(conn: Any, timeout: float | None = None, early: float | None = None) -> bool:
        sent_at.append(trio.current_time())
        return await ping(conn, timeout, early)

    pinger.ping = timed  # type: ignore[method-assign]
    pinger.clock_offset = 100.2  # wall = trio's clock + 100.2: ticks at trio 0.3, 0.8, ...
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(2.0)
        nursery.cancel_scope.cancel()
    assert sent_at == pytest.approx([0.3, 0.8, 1.3, 1.8])


@pytest.mark.parametrize("starved", [False, True])
async def test_unanswered_pings_are_reported_unless_starved(
    autojump_clock: trio.abc.Clock, starved: bool
) -> None:
    network = FakeNetwork(PEERS[:2])
    frozen = PEERS[1]
    answers = {frozen: False}
    pinger, pinged = pinger_for(network, answers)
    pinger.starved = lambda: starved
    reported: list[str] = []
    pinger.on_failure.append(reported.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(10)
        # 0.5 s apart, two peers, the frozen one's ping takes 2 s: never two at once.
        assert pinger.sent == len(pinged) >= 10
        if starved:
            assert reported == [] and pinger.failed == 0 and pinger.ignored > 0
            assert pinger.unresponsive() == set()
        else:
            assert set(reported) == {frozen.to_base58()} and pinger.failed == len(reported)
            assert pinger.unresponsive() == {frozen.to_base58()}
        # It answers again: responsive at its next ping.
        answers[frozen] = True
        await trio.sleep(5)
        assert pinger.unresponsive() == set()
        assert frozen in network.connections  # no abort by default: the link stays
        nursery.cancel_scope.cancel()


async def test_abort_closes_the_connection(autojump_clock: trio.abc.Clock) -> None:
    closed: list[ID] = []

    class Conn:
        def __init__(self, peer: ID) -> None:
            self.peer = peer

        async def close(self) -> None:
            closed.append(self.peer)

    network = FakeNetwork([])
    network.connections[PEERS[0]] = [Conn(PEERS[0])]
    pinger = LinkPinger(network, interval=0.5, timeout=2.0, abort=True)  # type: ignore[arg-type]
    pinger.clock_offset = 0.0

    async def never(conn: Any, timeout: float | None = None, early: float | None = None) -> bool:
        await trio.sleep(pinger.timeout)
        return False

    pinger.ping = never  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(3)
        assert closed == [PEERS[0]]
        nursery.cancel_scope.cancel()


async def test_an_out_of_turn_ping_says_what_it_learnt(autojump_clock: trio.abc.Clock) -> None:
    network = FakeNetwork(PEERS[:2])
    alive, frozen = PEERS[0], PEERS[1]
    pinger, pinged = pinger_for(network, {frozen: False})
    assert await pinger.probe_now(alive.to_base58()) is True
    assert await pinger.probe_now(frozen.to_base58()) is False
    assert await pinger.probe_now(ID(b"stranger").to_base58()) is None  # no connection
    # One already in flight is not waited for: nothing learnt, nothing sent twice.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.probe_now, frozen.to_base58())
        await trio.sleep(0.1)
        assert await pinger.probe_now(frozen.to_base58()) is None
    assert pinged == [alive, frozen, frozen]


async def test_measured_timeouts_fail_a_frozen_peer_at_the_floor(
    autojump_clock: trio.abc.Clock,
) -> None:
    network = FakeNetwork(PEERS[:3])
    quick, laggard, frozen = PEERS[:3]
    answers = {frozen: True}
    waited: list[float] = []
    pinger, pinged = pinger_for(network, answers, rtts={quick: 0.005, laggard: 0.8}, waited=waited)
    pinger.timing = LinkTiming(floor=0.5, ceiling=2.0, slow=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(10)
        assert pinger.timing.timeout(quick.to_base58()) == 0.5
        assert pinger.timing.timeout(laggard.to_base58()) > 0.5
        # Every laggard's answer came after 200 ms and every quick one's in time: each
        # late one raised the network score, each timely one lowered it again.
        assert pinged.count(laggard) > 1 and pinger.network_score() <= 1
        # Off the ticks (every 0.5 s from 0), so that no ping starts or ends as we look.
        await trio.sleep(0.25)
        answers[frozen] = False
        before, sent = pinger.failed, len(pinged)
        # Its turn comes every third tick: once in the ticks at 10.5, 11 and 11.5 s, and
        # failed at the floor by 12.25 s.
        await trio.sleep(2)
        assert pinger.failed == before + 1
        ours = [w for peer, w in zip(pinged[sent:], waited[sent:], strict=True) if peer == frozen]
        assert ours and set(ours) == {0.5}  # not the 2 s ceiling
        nursery.cancel_scope.cancel()


async def test_timing_that_does_not_measure_keeps_the_fixed_timeout_and_counts_late_answers(
    autojump_clock: trio.abc.Clock,
) -> None:
    # P2PConfig.ping_network_awareness without ping_timeout_floor: late answers stretch
    # the view's timeouts, every ping waits the pinger's own timeout.
    laggard = PEERS[0]
    waited: list[float] = []
    pinger, pinged = pinger_for(FakeNetwork([laggard]), {}, rtts={laggard: 0.8}, waited=waited)
    pinger.timing = LinkTiming(floor=0.5, ceiling=2.0, slow=0.2, measures=False)
    pinger.timeout = 3.0  # read at every ping: not the timing's ceiling
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(3)  # fewer late answers than the score's cap of 7
        nursery.cancel_scope.cancel()
    assert set(waited) == {3.0}
    answered_late = pinged.count(laggard)
    assert answered_late > 1 and answered_late - 1 <= pinger.network_score() <= answered_late


async def test_strangers_and_out_of_turn_answers_leave_the_score_alone(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A stranger answering late on purpose, or a suspect pinged out of turn (slow by
    # selection, and chosen by whoever got a suspicion published), must not stretch our
    # verdicts on everybody else.
    member, stranger = PEERS[:2]
    pinger, pinged = pinger_for(FakeNetwork([member, stranger]), {}, rtts={stranger: 0.8})
    pinger.timing = LinkTiming(floor=0.5, ceiling=2.0, slow=0.2, measures=False)
    pinger.scored = lambda peer: peer == member.to_base58()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert pinged.count(stranger) > 2 and pinger.network_score() == 0
    pinger.scored = lambda _peer: True
    for _ in range(3):
        assert await pinger.probe_now(stranger.to_base58()) is True
    assert pinger.network_score() == 0


async def test_answers_read_while_our_own_loop_lags_leave_the_score_alone(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Late by our own lag, not the network's: a node starting beside many others must not
    # stretch its verdicts on everybody for its own slowness.
    laggard = PEERS[0]
    pinger, pinged = pinger_for(FakeNetwork([laggard]), {}, rtts={laggard: 0.8})
    pinger.timing = LinkTiming(floor=0.5, ceiling=2.0, slow=0.2, measures=False)
    lagging = [True]
    pinger.lagging = lambda: lagging[0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(3)
        assert pinged and pinger.network_score() == 0
        lagging[0] = False
        await trio.sleep(3)
        assert pinger.network_score() > 0
        nursery.cancel_scope.cancel()


async def test_without_timing_every_ping_waits_the_fixed_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    waited: list[float] = []
    pinger, _ = pinger_for(FakeNetwork(PEERS[:1]), {}, waited=waited)
    assert await pinger.probe_now(PEERS[0].to_base58()) is True
    assert waited == [2.0] and pinger.network_score() == 0


async def test_self_doubt_stretches_the_interval_and_timeout_but_not_out_of_turn_pings(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Lifeguard IV-A as memberlist's awareness: a node that doubts itself pings less often
    # and waits longer, which also takes load off full cores.
    waited: list[float] = []
    pinger, pinged = pinger_for(FakeNetwork(PEERS), {}, waited=waited)
    doubt = [0]
    pinger.scale = lambda: doubt[0] + 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        await trio.sleep(10.01)
        assert len(pinged) == 20 and set(waited) == {2.0}  # every 0.5 s, 2 s each
        doubt[0] = 3
        await trio.sleep(0.5)  # the sleep begun before the doubt ends at the old pace
        pinged.clear()
        waited.clear()
        await trio.sleep(20.0)
        assert len(pinged) == 10 and set(waited) == {8.0}  # every 2 s, 8 s each
        nursery.cancel_scope.cancel()
    waited.clear()
    assert await pinger.probe_now(PEERS[0].to_base58()) is True
    assert waited == [2.0]


class _Witness:
    """States by connection: ``closed`` ones say the peer closed its end."""

    def __init__(self, closed: set[Any]) -> None:
        self.closed = closed

    def state(self, conn: Any) -> TcpState | None:
        if conn == "ours":  # a socket we closed ourselves: its fd is gone
            return None
        if conn == "odd":
            raise RuntimeError("a connection object of another shape")
        return TcpState(0, 0, 0, tcp_state=8 if conn in self.closed else 1)


def test_a_peer_counts_as_closed_only_when_the_kernel_says_so_of_every_connection() -> None:
    network = FakeNetwork(PEERS[:2])
    network.connections[PEERS[1]] = ["old", "new"]
    pinger = LinkPinger(network, interval=0.5, timeout=2.0)  # type: ignore[arg-type]
    name = PEERS[0].to_base58()
    assert not pinger.peer_closed(name)  # no witness: no kernel's word
    pinger.witness = _Witness({PEERS[0], "old"})  # type: ignore[assignment]
    assert pinger.peer_closed(name)
    assert not pinger.peer_closed(PEERS[1].to_base58())  # "new" is still open
    assert not pinger.peer_closed(ID(b"stranger").to_base58())  # no connection at all
    network.connections[PEERS[0]] = [PEERS[0], "ours"]
    assert not pinger.peer_closed(name)  # our own close is no word of the peer's
    network.connections[PEERS[0]] = [PEERS[0], "odd"]
    assert not pinger.peer_closed(name)  # nothing raises out
    assert not pinger.peer_closed("0OIl not base58")  # nor from a malformed id
