"""Tests of probes.loop_lag.

``LagWindow`` is fed plain values. The monitor runs under ``autojump_clock`` (pytest-trio's
``MockClock(autojump_threshold=0)``) with exact virtual times; a stall is simulated there by
jumping the clock while a task holds the loop. One test uses the real clock and a real
``time.sleep`` to show the measurement works on an actual loop.
"""

from __future__ import annotations

import math
import time

import pytest
import trio
import trio.testing

from mesh.model import CheckResult, HealthCheck
from mesh.wake_grid import pin_offset
from probes.loop_lag import LagWindow, LoopLagMonitor, event_loop_lag_check


async def run(check: HealthCheck) -> CheckResult:
    result = await check.checker()
    assert isinstance(result, CheckResult)
    return result


# --- LagWindow ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "span", "max_lag", "recent_lag", "count"),
    [
        ([], 10.0, 0.0, 0.0, 0),
        ([(0.0, 0.125)], 10.0, 0.125, 0.125, 1),
        ([(0.0, 0.5), (1.0, 0.125)], 10.0, 0.5, 0.125, 2),
        ([(0.0, 0.125), (1.0, 0.5), (2.0, 0.0)], 10.0, 0.5, 0.0, 3),
        # A sample exactly ``span`` old is out: the window is (now - span, now].
        ([(0.0, 0.5), (10.0, 0.125)], 10.0, 0.125, 0.125, 1),
        ([(0.0, 0.5), (9.75, 0.125)], 10.0, 0.5, 0.125, 2),
        ([(0.0, 0.5), (1.0, 0.25), (3.5, 0.0)], 3.0, 0.25, 0.0, 2),
        # Samples at one instant are all kept.
        ([(5.0, 0.25), (5.0, 0.5)], 1.0, 0.5, 0.5, 2),
        # A steady 0.25 s sampler over 40 s keeps the last 10 s: 40 samples.
        ([(0.25 * i, 0.0) for i in range(161)], 10.0, 0.0, 0.0, 40),
    ],
)
def test_lag_window(
    samples: list[tuple[float, float]], span: float, max_lag: float, recent_lag: float, count: int
) -> None:
    window = LagWindow(span)
    for at, lag in samples:
        window.add(at, lag)
    assert (window.max_lag, window.recent_lag, window.sample_count) == (max_lag, recent_lag, count)


def test_lag_window_forgets_an_old_spike() -> None:
    window = LagWindow(10.0)
    window.add(1.0, 2.0)
    assert window.max_lag == 2.0
    window.add(11.0, 0.0)
    assert window.max_lag == 0.0


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([(1.0, 0.0), (0.5, 0.0)], "went backwards"),
        ([(1.0, -0.1)], "lag must be >= 0"),
        ([(1.0, math.nan)], "lag must be >= 0"),
    ],
)
def test_lag_window_rejects_bad_samples(samples: list[tuple[float, float]], message: str) -> None:
    window = LagWindow()
    with pytest.raises(ValueError, match=message):
        for at, lag in samples:
            window.add(at, lag)


@pytest.mark.parametrize("span", [0.0, -1.0, math.nan])
def test_lag_window_rejects_bad_span(span: float) -> None:
    with pytest.raises(ValueError, match="span must be positive"):
        LagWindow(span)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": 0.0}, "period must be positive"),
        ({"period": 1.0, "span": 0.5}, "must cover at least one period"),
        ({"threshold": 0.0}, "threshold must be positive"),
        ({"threshold": math.nan}, "threshold must be positive"),
    ],
)
def test_monitor_rejects_bad_config(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopLagMonitor(**kwargs)


# --- the monitor under a mock clock -------------------------------------------------------


async def test_monitor_on_an_idle_loop_sees_no_lag(autojump_clock: trio.testing.MockClock) -> None:
    pin_offset(0.0)  # a point of the wake grid (mesh/wake_grid.py) at 0
    monitor = LoopLagMonitor()
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        assert monitor.running

        await trio.sleep(5.125)
        assert trio.current_time() == 5.125
        # One sample per 0.25 s, each exactly on time.
        assert monitor.sample_count == 20
        assert (monitor.max_lag, monitor.recent_lag, monitor.starved) == (0.0, 0.0, False)

        await trio.sleep(25.0)
        # The window holds the last 10 s only.
        assert monitor.sample_count == 40
        nursery.cancel_scope.cancel()
    assert not monitor.running


async def test_monitor_records_a_stall(autojump_clock: trio.testing.MockClock) -> None:
    pin_offset(0.0)  # a point of the wake grid (mesh/wake_grid.py) at 0
    monitor = LoopLagMonitor()
    check = event_loop_lag_check(monitor)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)  # its first deadline is 0.25
        await trio.sleep(0.125)
        # Hold the loop for a virtual second without yielding, as a blocking call would.
        autojump_clock.jump(1.0)
        await trio.sleep(0.0625)

        assert trio.current_time() == 1.1875
        assert monitor.sample_count == 1
        assert (monitor.max_lag, monitor.recent_lag) == (0.875, 0.875)  # woke at 1.125, not 0.25
        assert monitor.starved

        result = await run(check)
        assert not result.healthy
        assert result.message == "event loop starved: woke 0.9 s late"
        assert result.details == {
            "max_lag": 0.875,
            "recent_lag": 0.875,
            "threshold": 0.5,
            "samples": 1,
        }

        # Three seconds on, the node trusts its own timing again; the check, which reports
        # the whole 10 s window to operators, still fails.
        await trio.sleep(2.875)
        assert monitor.starved  # 2.75 s after the late wake-up at 1.125
        await trio.sleep(0.25)
        assert not monitor.starved
        assert not (await run(check)).healthy

        # Ten seconds on, the stall has left the window and the check passes again.
        await trio.sleep(7.0)
        assert monitor.max_lag == 0.0
        assert not monitor.starved
        result = await run(check)
        assert result.healthy
        assert result.message == "event loop lag 0 ms"
        nursery.cancel_scope.cancel()


async def test_check_threshold_is_its_own(autojump_clock: trio.testing.MockClock) -> None:
    pin_offset(0.0)  # a point of the wake grid (mesh/wake_grid.py) at 0
    monitor = LoopLagMonitor(threshold=0.25)
    lenient = event_loop_lag_check(monitor, threshold=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(0.125)
        autojump_clock.jump(0.5)
        await trio.sleep(0.0625)
        assert monitor.max_lag == 0.375
        assert monitor.starved  # over the monitor's 0.25
        result = await run(lenient)
        assert result.healthy  # under the check's 1.0
        assert result.details["threshold"] == 1.0
        nursery.cancel_scope.cancel()


async def test_check_before_the_first_sample(autojump_clock: trio.testing.MockClock) -> None:
    pin_offset(0.0)  # a point of the wake grid (mesh/wake_grid.py) at 0
    monitor = LoopLagMonitor()
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        result = await run(event_loop_lag_check(monitor))
        assert result.healthy
        assert result.message == "event loop lag: no samples yet"
        assert result.details["samples"] == 0
        nursery.cancel_scope.cancel()


async def test_check_fails_when_the_monitor_is_not_running() -> None:
    result = await run(event_loop_lag_check(LoopLagMonitor()))
    assert not result.healthy
    assert result.message == "event loop lag monitor is not running"


async def test_monitor_cannot_run_twice(autojump_clock: trio.testing.MockClock) -> None:
    pin_offset(0.0)  # a point of the wake grid (mesh/wake_grid.py) at 0
    monitor = LoopLagMonitor()
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        with pytest.raises(RuntimeError, match="already running"):
            await monitor.run()
        assert monitor.running  # the refused second run did not stop the first
        nursery.cancel_scope.cancel()


def test_check_properties() -> None:
    check = event_loop_lag_check(LoopLagMonitor())
    assert (check.name, check.interval, check.timeout, check.critical) == (
        "event-loop-lag",
        10.0,
        5.0,
        False,
    )


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan])
def test_check_rejects_bad_threshold(bad: float) -> None:
    with pytest.raises(ValueError, match="threshold must be positive"):
        event_loop_lag_check(LoopLagMonitor(), bad)


# --- the monitor on the real clock --------------------------------------------------------


async def test_monitor_sees_a_real_blocking_call() -> None:
    monitor = LoopLagMonitor(period=0.05)

    async def hog() -> None:
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point of this test

    async with trio.open_nursery() as nursery:
        # After start() the monitor's deadline is at most 0.05 s away, so it wakes >= 0.25 late.
        await nursery.start(monitor.run)
        nursery.start_soon(hog)
        with trio.fail_after(5):
            # The monitor has no event to wait on (it needs none in production), so poll.
            while monitor.max_lag < 0.25:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert monitor.max_lag < 5.0
        result = await run(event_loop_lag_check(monitor, threshold=0.2))
        assert not result.healthy
        assert result.message.startswith("event loop starved: woke ")
        nursery.cancel_scope.cancel()
