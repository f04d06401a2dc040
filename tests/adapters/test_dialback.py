"""Dial-backs: what counts as refused, and the bounds a hostile suspicion runs into."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
import trio.testing

from adapters.dialback import DialResult, Verifier, dial_back

PEER = "12D3KooWPeer"


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _addr(port: int, peer: str = PEER, host: str = "127.0.0.1") -> str:
    return f"/ip4/{host}/tcp/{port}/p2p/{peer}"


async def test_a_closed_port_is_refused_and_a_listening_one_open() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener:
        open_port = listener.getsockname()[1]
        assert await dial_back(("127.0.0.1", _closed_port()), 1.0) is DialResult.REFUSED
        assert await dial_back(("127.0.0.1", open_port), 1.0) is DialResult.OPEN
        # A peer we never dialled has no address we may dial.
        assert await dial_back(None, 1.0) is DialResult.UNKNOWN
        assert await dial_back(("not-an-ip", 1), 1.0) is DialResult.UNKNOWN


async def _listener() -> tuple[trio.socket.SocketType, tuple[str, int]]:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener, ("127.0.0.1", listener.getsockname()[1])


async def test_a_listener_closing_with_our_dial_in_its_queue_is_refused() -> None:
    # A killed process: its kernel resets our connection to it first, and its listening
    # socket a moment later. A dial-back in between completes from the listener's accept
    # queue (2 ms after the close, in a 10-node devnet), and the queue is reset when the
    # listener closes. Seen as open, it cost the crash a second of cooldown (issue 13).
    listener, address = await _listener()
    result: list[DialResult] = []

    async def dial() -> None:
        result.append(await dial_back(address, 1.0, hold=1.0))

    with listener, trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dial)
            await trio.lowlevel.wait_readable(listener)  # our dial waits in the queue
            listener.close()
    assert result == [DialResult.REFUSED]


@pytest.mark.parametrize("answer", [b"", b"/multistream/1.0.0\n"])
async def test_a_listener_that_answers_or_closes_is_open(answer: bytes) -> None:
    # A live py-libp2p listener writes its multistream header first, or drops a
    # connection by closing it (EOF): both end the hold at once, as open.
    listener, address = await _listener()
    with listener, trio.fail_after(2):
        conn: trio.socket.SocketType | None = None

        async def answer_it() -> None:
            nonlocal conn
            conn, _ = await listener.accept()
            if answer:
                await conn.send(answer)
            else:
                conn.shutdown(socket.SHUT_WR)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_it)
            result = await dial_back(address, 1.0, hold=5.0)  # ends long before the hold
        assert conn is not None
        conn.close()
    assert result is DialResult.OPEN


async def test_a_live_listener_stays_open_through_the_hold() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener:
        address = ("127.0.0.1", listener.getsockname()[1])
        began = trio.current_time()
        assert await dial_back(address, 1.0, hold=0.2) is DialResult.OPEN
        assert trio.current_time() - began >= 0.2  # it did wait for a reset


@pytest.mark.parametrize(("urgent", "at_once"), [(False, 1), (True, 2)])
async def test_one_peer_is_checked_once_at_a_time_and_cannot_take_every_slot(
    autojump_clock: trio.testing.MockClock, urgent: bool, at_once: int
) -> None:
    # A suspect whose check hangs (its address swallows SYNs), re-suspected every 0.1 s:
    # one check of it at a time, two if the second is urgent (our connection closed).
    running: list[str] = []
    most = 0
    crash_checks = 0

    async def verify(peer: str) -> None:
        nonlocal most, crash_checks
        running.append(peer)
        most = max(most, running.count("slow"))
        crash_checks += peer == "crash"
        try:
            await trio.sleep(5.0 if peer == "slow" else 0.0)
        finally:
            running.remove(peer)

    verifier = Verifier(timeout=2.0, cooldown=1.0, max_concurrent=4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        for _ in range(40):
            verifier.request("slow", urgent=urgent)
            verifier.request("crash", urgent=True)
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert most == at_once
    assert crash_checks >= 4  # the other peer still had slots, every cooldown or so


async def test_requests_are_bounded_by_the_queue(autojump_clock: trio.testing.MockClock) -> None:
    checked: list[str] = []

    async def verify(peer: str) -> None:
        checked.append(peer)
        await trio.lowlevel.checkpoint()

    verifier = Verifier(cooldown=1.0, max_concurrent=2, max_pending=3)
    async with trio.open_nursery() as nursery:
        assert [verifier.request(p) for p in ("a", "b", "c", "d")] == [True, True, True, False]
        assert verifier.counts["dropped"] == 1
        assert verifier.request("a") is False  # already pending: no second check
        nursery.start_soon(verifier.run, verify)
        await trio.testing.wait_all_tasks_blocked()
        assert checked == ["a", "b", "c"]
        nursery.cancel_scope.cancel()


async def test_a_request_within_the_cooldown_waits_for_it_and_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    checked: list[tuple[str, float]] = []

    async def verify(peer: str) -> None:
        checked.append((peer, trio.current_time()))
        await trio.lowlevel.checkpoint()

    verifier = Verifier(cooldown=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        start = trio.current_time()
        assert verifier.request("a")
        await trio.sleep(0.5)
        # A crash right after a check: this one waits out the cooldown, then runs.
        assert verifier.request("a")
        assert not verifier.request("a")  # one deferred check is enough
        await trio.sleep(0.3)
        assert len(checked) == 1
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    assert [(peer, round(at - start, 6)) for peer, at in checked] == [("a", 0.0), ("a", 1.0)]


async def test_an_urgent_request_skips_the_cooldown(autojump_clock: trio.testing.MockClock) -> None:
    # Our ping to a peer found it connected; a moment later the connection closes: the
    # dial-back that may prove a crash must not wait out the ping's cooldown.
    checked: list[float] = []

    async def verify(peer: str) -> None:
        checked.append(trio.current_time())
        await trio.lowlevel.checkpoint()

    verifier = Verifier(cooldown=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        start = trio.current_time()
        verifier.request("a")
        await trio.sleep(0.2)
        verifier.request("a")  # deferred to 1.0
        verifier.request("a", urgent=True)  # moved to the front
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert [round(at - start, 6) for at in checked] == [0.0, 0.2]


async def test_an_urgent_request_runs_beside_a_check_under_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A suspicion heard first sent us to ping the suspect on a connection that looked
    # open; the connection closes while that ping hangs: the dial-back must not wait.
    started: list[tuple[str, float]] = []

    async def verify(peer: str) -> None:
        started.append((peer, trio.current_time()))
        await trio.sleep(2.0)

    verifier = Verifier(timeout=5.0, cooldown=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        start = trio.current_time()
        verifier.request("a")
        await trio.sleep(0.1)
        verifier.request("a")  # waits for the check under way, then the cooldown
        verifier.request("a", urgent=True)  # runs now, beside it
        await trio.sleep(0.05)
        verifier.request("a", urgent=True)  # a second urgent within the cooldown...
        await trio.sleep(5.0)
        nursery.cancel_scope.cancel()
    # ...is an ordinary request: it waits until no check of "a" is under way.
    assert [round(at - start, 6) for _, at in started] == [0.0, 0.1, 2.1]


async def test_one_urgent_request_a_cooldown_skips_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A peer (or many Sybils) churning connections: each disconnect is an urgent request,
    # but only one per peer and cooldown is served at once; an honest crash still is.
    started: list[tuple[str, float]] = []

    async def verify(peer: str) -> None:
        started.append((peer, trio.current_time()))
        await trio.sleep(0.05)

    verifier = Verifier(timeout=5.0, cooldown=1.0, max_concurrent=4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        start = trio.current_time()
        for _ in range(50):  # 5 s of a disconnect every 0.1 s
            verifier.request("churn", urgent=True)
            await trio.sleep(0.1)
        verifier.request("crash", urgent=True)
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    churn = [at - start for peer, at in started if peer == "churn"]
    assert 4 <= len(churn) <= 6  # about one a cooldown (1 s + the check), not 50
    assert [peer for peer, _ in started][-1] == "crash"


async def test_a_check_that_hangs_is_cut_off_and_frees_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[str] = []

    async def verify(peer: str) -> None:
        if peer == "slow":
            await trio.sleep_forever()
        finished.append(peer)

    verifier = Verifier(timeout=2.0, cooldown=0.0, max_concurrent=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(verifier.run, verify)
        verifier.request("slow")
        verifier.request("next")
        await trio.sleep(1.9)
        assert finished == []  # the one slot is held
        await trio.sleep(0.2)
        assert finished == ["next"]
        nursery.cancel_scope.cancel()


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Verifier(max_pending=0)
