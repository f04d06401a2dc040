"""The simulator against the real devnet: ``python -m devnet.simulator.validate``.

Runs the bench's own scenarios in the simulator, shaped as the devnet runs them (every node
on 127.0.0.1, node i joining node i-1 ``--join-interval`` after it, node2 killed, node3
frozen and node4 stopped the moment every view agrees) and reads them as the bench reads
the real devnet (``devnet.bench_detection.one_run``): all nodes polled at once every
``poll_interval(n)``, a time reported at the first poll at or after it, the event sent at
the poll that saw agreement. Prints the simulator's median over ``--seeds`` beside the real
median from a ``make bench`` results file, and whether the two agree within the tolerance.

Tolerance: a detection or convergence time agrees when the two differ by at most one poll
interval plus 0.5 s, or by at most 25 % of the real figure, whichever is larger. The real
devnet has costs the model leaves out (20 Python processes on two cores; connections the
DHT probe opens; process start-up), so a row outside the tolerance is a gap of the model
to explain before its predictions are used, not a figure to tune away.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from pathlib import Path

from devnet.simulator.scenarios import Settings, run

__all__ = ["METRICS", "agrees", "main", "observed", "real_medians", "simulated"]

# Bench key -> the simulator's scenario.
METRICS = {"converge": "join", "kill": "crash", "freeze": "freeze", "leave": "leave"}
DEFAULT_RESULTS = Path(".devnet/bench/results.json")


def poll_interval(n: int) -> float:
    """The bench's polling interval for ``n`` nodes (a test keeps it equal to
    ``devnet.bench_detection.poll_interval``; importing the bench here would pull psutil
    and the devnet into the simulator)."""
    return 0.1 if n <= 5 else 0.15 if n <= 10 else 0.25


def observed(seconds: float, interval: float) -> float:
    """What a poll every ``interval`` from time 0 reports for something at ``seconds``."""
    return math.ceil(round(seconds / interval, 9)) * interval


def agrees(sim: float, real: float, interval: float) -> bool:
    return abs(sim - real) <= max(interval + 0.5, 0.25 * real)


def simulated(n: int, metric: str, seed: int, join_interval: float) -> float | None:
    """One seeded run of ``metric`` at ``n`` nodes, as the bench would have reported it."""
    interval = poll_interval(n)
    scenario = METRICS[metric]
    # The bench signals at the poll that saw agreement: some time after it really came.
    late = 0.0 if scenario == "join" else random.Random(seed).uniform(0.0, interval)
    result = run(
        Settings(
            nodes=n,
            scenario=scenario,
            seed=seed,
            join_interval=join_interval,
            one_host=True,
            chain=True,
            cold=scenario != "join",
            after=late,
            duration=30.0,
        )
    )
    if scenario == "join":
        raw = result.converged_at
    else:
        raw = max(result.seen) if len(result.seen) == result.observers else None
    return None if raw is None else observed(raw, interval)


def real_medians(results: dict[str, object]) -> dict[tuple[int, str], float]:
    """Median per (size, metric) of our runs in a bench results file."""
    runs = results.get("runs")
    figures: dict[tuple[int, str], list[float]] = {}
    for entry in runs if isinstance(runs, list) else []:
        if not isinstance(entry, dict) or entry.get("target") != "chorus":
            continue
        for metric in METRICS:
            value = entry.get(metric)
            if isinstance(value, int | float):
                figures.setdefault((int(entry["n"]), metric), []).append(float(value))
    return {key: statistics.median(values) for key, values in figures.items()}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.simulator.validate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="bench results")
    parser.add_argument("--seeds", type=int, default=5, help="simulated runs per figure")
    parser.add_argument(
        "--join-interval", type=float, default=0.85, help="seconds between two nodes' starts"
    )
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.exit(2, f"cannot read bench results {args.results}: {exc}\n")
    real = real_medians(results)
    if not real:
        parser.exit(2, f"no chorus runs in {args.results}\n")
    meta = results.get("meta", {})
    commit = meta.get("part_commits", {}).get("runs") or meta.get("commit", "?")
    print(f"real: {args.results} (runs at {commit}); simulator: median of {args.seeds} seeds")
    print()
    print("| figure | nodes | real devnet | simulator | agrees |")
    print("|---|---:|---:|---:|:-:|")
    for (n, metric), value in sorted(
        real.items(), key=lambda kv: (list(METRICS).index(kv[0][1]), kv[0][0])
    ):
        runs = [simulated(n, metric, seed, args.join_interval) for seed in range(1, args.seeds + 1)]
        done = [r for r in runs if r is not None]
        sim = statistics.median(done) if len(done) == len(runs) else None
        ok = sim is not None and agrees(sim, value, poll_interval(n))
        print(f"| {metric} | {n} | {_fmt(value)} | {_fmt(sim)} | {'yes' if ok else '**no**'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
