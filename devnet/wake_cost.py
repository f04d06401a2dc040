"""What timer wake-ups cost this machine: periodic trio sleepers, apart or on one grid.

A measurement tool, not product code (mesh/wake_grid.py says why it exists). It runs
``--tasks`` sleepers of ``--period`` seconds in one trio run for ``--seconds``, first each on
its own phase, then all on ``mesh.wake_grid``'s grid, and prints the process's CPU for each.
The sleepers do nothing else, so the difference is what the extra wakes cost.

example (2026-12-05, 2 cores, 4 sleepers at 0.25 s, 20 s each): apart 0.78 % of a core,
on the grid 0.22 %; a lone sleeper 0.16 %.

  python -m devnet.wake_cost --tasks 4 --period 0.25 --seconds 20
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Sequence

import trio

from mesh.wake_grid import sleep_to_grid

__all__ = ["cpu_seconds", "main"]


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {raw}")
    return value


def cpu_seconds(tasks: int, period: float, seconds: float, *, grid: bool) -> float:
    """User and system CPU seconds of one trio run of ``tasks`` sleepers."""

    async def sleeper(index: int) -> None:
        await trio.sleep(index * period / tasks)  # phases spread over one period
        while True:
            if grid:
                await sleep_to_grid(period)
            else:
                await trio.sleep(period)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for index in range(tasks):
                nursery.start_soon(sleeper, index)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()

    before = resource.getrusage(resource.RUSAGE_SELF)
    trio.run(run)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.wake_cost",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--tasks", type=_count, default=4, help="sleepers (default: 4)")
    parser.add_argument(
        "--period", type=_positive, default=0.25, help="seconds each sleeps (default: 0.25)"
    )
    parser.add_argument(
        "--seconds", type=_positive, default=20.0, help="length of each run (default: 20)"
    )
    args = parser.parse_args(argv)
    wakes = args.tasks * args.seconds / args.period
    for grid in (False, True):
        cpu = cpu_seconds(args.tasks, args.period, args.seconds, grid=grid)
        print(
            f"{'on one grid' if grid else 'apart':>12}: {100 * cpu / args.seconds:.3f} % of a core,"
            f" {1e6 * cpu / wakes:.0f} us a sleeper's wake"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
