"""mesh/wake_grid.py: the periodic loops of a node wake at the same instants."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mesh.wake_grid import next_point, pin_offset, sleep_to_grid, wall_offset


@pytest.mark.parametrize(
    ("now", "period", "offset", "point"),
    [
        (0.0, 0.25, 0.0, 0.25),  # strictly after now, even on a point
        (0.1, 0.25, 0.0, 0.25),
        (0.26, 0.25, 0.0, 0.5),
        (0.1, 0.5, 0.3, 0.2),  # wall 0.4 -> 0.5, back on trio's clock
        (1e6 + 0.3, 0.25, 1.7e9 + 0.1, 1e6 + 0.4),
    ],
)
def test_next_point(now: float, period: float, offset: float, point: float) -> None:
    assert next_point(now, period, offset) == pytest.approx(point, abs=1e-6)
    assert now < next_point(now, period, offset) <= now + period


@pytest.mark.parametrize("offset", [0.0, 0.1, 1.7e9 + 0.123])
def test_chained_points_step_one_period_and_never_stall(offset: float) -> None:
    now = next_point(0.0, 0.25, offset)
    for _ in range(1000):
        later = next_point(now, 0.25, offset)
        assert later - now == pytest.approx(0.25, abs=1e-6)
        now = later


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan")])
def test_a_period_must_be_positive(period: float) -> None:
    with pytest.raises(ValueError, match="period must be positive"):
        next_point(1.0, period, 0.0)


async def test_the_offset_is_read_once_per_run(autojump_clock: trio.testing.MockClock) -> None:
    first = wall_offset()
    await trio.sleep(100.0)  # trio's clock moves on, the wall clock hardly: the grid holds
    assert wall_offset() == first


async def test_loops_of_different_phases_and_periods_wake_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pin_offset(0.0)
    woke: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    async def loop(name: str, period: float, phase: float) -> None:
        await trio.sleep(phase)
        for _ in range(8):
            await sleep_to_grid(period)
            woke[name].append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop, "a", 0.25, 0.01)
        nursery.start_soon(loop, "b", 0.25, 0.17)
        nursery.start_soon(loop, "c", 0.5, 0.09)
    # Every wake of any loop is a point of the 0.25 s grid; the two 0.25 s loops never
    # wake apart, and each 0.5 s wake is one of theirs.
    assert woke["a"] == woke["b"] == [0.25 * k for k in range(1, 9)]
    assert set(woke["c"]) <= set(woke["a"]) | {0.25 * k for k in range(9, 17)}
