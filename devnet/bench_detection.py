"""The bench's detection runs, and the polling every part of the bench waits with.

One cluster per run and size: start, converge, then kill node 2 (then restart it and wait
for agreement again), freeze node 3 once no peer holds it as starting (thaw it, agreement
again), terminate node 4; the
cluster has n live members at every measurement. Polls go to every node in parallel, every
0.1 s up to 5 nodes, 0.15 s up to 10, 0.25 s beyond (the figures' resolution); the same
interval on both sides. :func:`summarise` turns the runs into the medians the report, the
goals table and the plot show.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

from devnet.bench_target import Target
from devnet.bench_text import fmt
from devnet.cluster import DevnetError

__all__ = [
    "CONVERGE_TIMEOUT",
    "DETECT_TIMEOUT",
    "METRICS",
    "all_alive",
    "all_see",
    "one_run",
    "poll_interval",
    "poll_until",
    "summarise",
]

DETECT_TIMEOUT = 60.0
CONVERGE_TIMEOUT = 60.0
STARTED_TIMEOUT = 30.0  # for the freeze's victim to be past its start-up at every peer

# The clock and sleep of the polling loops; tests replace them with a fake clock.
_clock = time.monotonic
_sleep = time.sleep


def poll_interval(n: int) -> float:
    return 0.1 if n <= 5 else 0.15 if n <= 10 else 0.25


def poll_until(
    target: Target,
    done: Callable[[dict[int, dict[int, str]]], bool],
    *,
    timeout: float,
    interval: float,
) -> float | None:
    """Monotonic time of the first poll whose views satisfy ``done``; None on timeout."""
    deadline = _clock() + timeout
    while _clock() < deadline:
        began = _clock()
        views = target.views()
        if done(views):
            return began
        _sleep(max(0.0, interval - (_clock() - began)))
    return None


def _wait_until(done: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Poll ``done`` every ``interval`` until it holds (True) or ``timeout`` passes."""
    began = _clock()
    while not done():
        if _clock() - began >= timeout:
            return False
        _sleep(interval)
    return True


def all_alive(live: set[int]) -> Callable[[dict[int, dict[int, str]]], bool]:
    def check(views: dict[int, dict[int, str]]) -> bool:
        return all(
            i in views and {m for m, s in views[i].items() if s == "alive"} == live for i in live
        )

    return check


def all_see(
    observers: set[int], victim: int, states: set[str]
) -> Callable[[dict[int, dict[int, str]]], bool]:
    def check(views: dict[int, dict[int, str]]) -> bool:
        return all(views.get(o, {}).get(victim) in states for o in observers)

    return check


def one_run(target: Target, n: int, say: Callable[[str], None]) -> dict[str, float | None]:
    """Convergence, then SIGKILL, SIGSTOP and SIGTERM detection, on one fresh cluster."""
    every = poll_interval(n)
    live = set(range(1, n + 1))
    out: dict[str, float | None] = {}
    ready = target.start(n)
    agreed = poll_until(target, all_alive(live), timeout=CONVERGE_TIMEOUT, interval=every)
    out["converge"] = None if agreed is None else agreed - ready
    if agreed is None:
        raise DevnetError(f"{target.name} at {n} nodes did not converge")
    say(f"{target.name} n={n}: converged in {out['converge']:.2f}s")

    def detect(key: str, victim: int, signum: int, states: set[str]) -> None:
        others = live - {victim}
        sent = _clock()
        target.signal(victim, signum)
        seen = poll_until(
            target, all_see(others, victim, states), timeout=DETECT_TIMEOUT, interval=every
        )
        out[key] = None if seen is None else seen - sent
        say(f"{target.name} n={n}: {key} {fmt(out[key])}")

    def reconverge(victim: int, thaw: bool) -> None:
        if thaw:
            target.signal(victim, signal.SIGCONT)
        else:
            target.restart(victim)
        if poll_until(target, all_alive(live), timeout=CONVERGE_TIMEOUT, interval=every) is None:
            raise DevnetError(f"{target.name} at {n} nodes did not agree again after {victim}")

    detect("kill", 2, signal.SIGKILL, {"dead"})
    reconverge(2, thaw=False)
    # A hang of a running node: its peers give a member still starting (its first checks,
    # the DHT probe's included, take a few seconds) a starved member's patience, and one
    # frozen then is seen dead in about 7 s at 5 nodes (2026-12-05), not 2-3.
    if not _wait_until(lambda: not target.starting(3), STARTED_TIMEOUT, every):
        say(f"{target.name} n={n}: node 3 still starting after {STARTED_TIMEOUT:g} s")
    detect("freeze", 3, signal.SIGSTOP, {"dead"})
    reconverge(3, thaw=True)
    detect("leave", 4, signal.SIGTERM, {"left"})
    return out


# --------------------------------------------------------------------------- summary


METRICS = (
    ("converge", "last node ready → full agreement"),
    ("kill", "SIGKILL → every other node sees it dead"),
    ("freeze", "SIGSTOP → every other node sees it dead"),
    ("leave", "SIGTERM → every other node sees it left"),
)


def summarise(results: dict[str, Any]) -> dict[str, dict[int, dict[str, dict[str, Any]]]]:
    """metric -> n -> target -> {median, min, max, runs, failed}."""
    table: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for metric, _ in METRICS:
        for run in results.get("runs", []):
            cell = table.setdefault(metric, {}).setdefault(run["n"], {})
            entry = cell.setdefault(run["target"], {"values": [], "failed": 0})
            value = run.get(metric)
            if value is None:
                entry["failed"] += 1
            else:
                entry["values"].append(value)
    for by_n in table.values():
        for cell in by_n.values():
            for entry in cell.values():
                values = entry["values"]
                entry["median"] = statistics.median(values) if values else None
                entry["min"] = min(values) if values else None
                entry["max"] = max(values) if values else None
    return table
