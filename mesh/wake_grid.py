"""One grid of wake-up times for a node's periodic loops.

A sleeping process that a timer wakes pays for the wake itself: on this project's 2-core
VM a trio loop woken four times a second by one sleeper costs 0.16 % of a core, about
0.4 ms a wake, though its task does nothing (a microbenchmark of trio sleepers, 20 s
each, 2026-12-05). Four such loops on their own phases cost 0.78 %; the same four
woken at the same instants 0.22 %: trio runs every task whose deadline has passed in one
pass. A node had several loops of that kind (the publisher's poll, the view's tick, the
redial check, the event-loop lag sampler), each sleeping its period from whenever it last
woke, so their phases drifted apart.

Each of them now sleeps until the next point of one grid: multiples of its period on
the wall clock, read once per trio run and then held as an offset from trio's clock (a
wall-clock step does not move the grid). The pinger ticks on the same grid
(``wall_offset``), so its half-second ticks wake with the others.
"""

from __future__ import annotations

import math
import time

import trio
from trio.lowlevel import RunVar

__all__ = ["grid_after", "next_point", "pin_offset", "sleep_to_grid", "wall_offset"]

_OFFSET: RunVar[float] = RunVar("chorus_wall_offset")


def wall_offset() -> float:
    """Wall-clock seconds minus trio's clock, read at the first call of this trio run."""
    try:
        return _OFFSET.get()
    except LookupError:
        offset = time.time() - trio.current_time()
        _OFFSET.set(offset)
        return offset


def pin_offset(offset: float) -> None:
    """Fix this trio run's grid: its points are multiples of each period plus ``-offset``
    on trio's clock. For tests under a mock clock, whose timings assume a phase."""
    _OFFSET.set(offset)


def next_point(now: float, period: float, offset: float) -> float:
    """The first grid point strictly after ``now`` (trio's clock): a multiple of
    ``period`` on the wall clock, ``offset`` being wall minus trio time."""
    if not period > 0:
        raise ValueError(f"period must be positive, got {period!r}")
    point = (math.floor((now + offset) / period) + 1) * period - offset
    # Float rounding may land on ``now`` itself; the next point is then one period on.
    return point if point > now else point + period


def grid_after(now: float, period: float) -> float:
    """This run's next grid point of ``period`` after ``now`` (trio's clock)."""
    return next_point(now, period, wall_offset())


async def sleep_to_grid(period: float) -> None:
    """Sleep until the next grid point of ``period``: at most ``period`` seconds."""
    await trio.sleep_until(grid_after(trio.current_time(), period))
