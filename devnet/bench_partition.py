"""The partition part of ``python -m devnet.bench --parts partition`` (issue 13).

Both clusters side by side, every node in its own network namespace as in the loss soak
(devnet/bench_loss.py): ours a ``--netns`` devnet in the production profile, Serf's agents
on a second bridge. One run cuts both into halves at the same moment (``NetnsNet.cut``:
the second half moves onto a bridge of its own, so frames between the halves are lost
without an error, as behind a broken switch), waits until every node lists every node of
the other half dead, heals both at the same moment and times, per side, until every view
lists every node alive again. The runs follow one another on the same two clusters, each
starting from a cluster that agreed on all alive.

Two figures per run and side: ``split``, from the cut until every node lists the other
half dead (a partition is a frozen peer seen from the other side: no reset, no refused
dial), and ``heal``, from the heal until all views agree again (issue 13's goal: 3 s for
3 | 3; Serf retries failed members every 30 s, and gossips to the dead for 30 s).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devnet.bench_detection import CONVERGE_TIMEOUT, all_alive
from devnet.bench_loss import netns_sides
from devnet.bench_target import Target
from devnet.bench_text import fmt
from devnet.cluster import DevnetError, NetnsNet

__all__ = ["HEAL_GOAL", "halves", "median_of", "partition_heal", "partition_section", "split_seen"]

SPLIT_TIMEOUT = 120.0  # a frozen peer takes ours ~6 s and Serf's ~7 s; generous
HEAL_TIMEOUT = 120.0  # Serf's reconnect interval is 30 s; four of them
POLL = 0.25  # the figures' resolution
HEAL_GOAL = 3.0  # issue 13: views agree within 3 s of the heal (3 | 3)


def halves(n: int) -> list[list[int]]:
    """Nodes 1..n as the two sides of the cut: the first half and the rest."""
    if n < 2:
        raise ValueError(f"a partition needs at least 2 nodes, got {n}")
    cut = n // 2
    return [list(range(1, cut + 1)), list(range(cut + 1, n + 1))]


def split_seen(groups: Sequence[Sequence[int]]) -> Callable[[dict[int, dict[int, str]]], bool]:
    """True once every node of each group lists every node of the other groups dead (a node
    that does not answer does not count as seeing it)."""

    def check(views: dict[int, dict[int, str]]) -> bool:
        for group in groups:
            others = [m for g in groups if g is not group for m in g]
            for observer in group:
                view = views.get(observer)
                if view is None or any(view.get(m) != "dead" for m in others):
                    return False
        return True

    return check


def partition_heal(
    folder: Path,
    n: int,
    runs: int,
    say: Callable[[str], None],
    *,
    admission: bool = True,
    profile: str = "production",
) -> dict[str, Any]:
    """Start both sides in namespaces, cut and heal them ``runs`` times; always clean up."""
    chorus, chorus_net, serf, serf_net = netns_sides(folder, admission=admission, profile=profile)
    sides: dict[str, tuple[Target, NetnsNet]] = {
        chorus.name: (chorus, chorus_net),
        serf.name: (serf, serf_net),
    }
    try:
        return _runs(sides, n, runs, say)
    finally:
        for target, net in sides.values():
            with contextlib.suppress(DevnetError, OSError):
                net.heal(range(1, n + 1))  # an interrupted run leaves no side bridge
            with contextlib.suppress(DevnetError, OSError):
                target.close()


def _runs(
    sides: Mapping[str, tuple[Target, NetnsNet]],
    n: int,
    runs: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    groups = halves(n)
    everyone = set(range(1, n + 1))
    for name, (target, _net) in sides.items():
        say(f"partition: starting {n} {name} nodes in network namespaces")
        target.start(n)
    for name, (target, _net) in sides.items():
        if _first(target, all_alive(everyone), CONVERGE_TIMEOUT) is None:
            raise DevnetError(f"partition: {name} never agreed on {n} alive nodes")
    out: dict[str, Any] = {"n": n, "groups": groups, "runs": []}
    for run in range(1, runs + 1):
        entry: dict[str, Any] = {"run": run}
        cut_at = _at_once(sides, lambda net: net.cut(groups))
        for name, (target, _net) in sides.items():
            seen = _first(target, split_seen(groups), SPLIT_TIMEOUT, since=cut_at[name])
            entry[name] = {"split": seen}
        healed_at = _at_once(sides, lambda net: net.heal(sorted(everyone)))
        for name, (target, _net) in sides.items():
            entry[name]["heal"] = _first(
                target, all_alive(everyone), HEAL_TIMEOUT, since=healed_at[name]
            )
        out["runs"].append(entry)
        figures = (
            f"{name} split seen {fmt(entry[name]['split'])}, healed {fmt(entry[name]['heal'])}"
            for name in sides
        )
        say(f"partition run {run}: " + "; ".join(figures))
    return out


def _at_once(
    sides: Mapping[str, tuple[Target, NetnsNet]], act: Callable[[NetnsNet], None]
) -> dict[str, float]:
    """Apply ``act`` to every side's namespaces, one right after the other; each side's
    clock starts when its own change is in place."""
    done: dict[str, float] = {}
    for name, (_target, net) in sides.items():
        act(net)
        done[name] = time.monotonic()
    return done


def _first(
    target: Target,
    done: Callable[[dict[int, dict[int, str]]], bool],
    timeout: float,
    *,
    since: float | None = None,
) -> float | None:
    """Seconds from ``since`` (or now) to the first poll whose views satisfy ``done``,
    polling every POLL seconds; None if ``timeout`` passes first. The time taken is the
    poll's start: the views it returns were at least that old."""
    start = time.monotonic() if since is None else since
    deadline = start + timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if done(target.views()):
            return asked - start
        time.sleep(max(0.0, POLL - (time.monotonic() - asked)))
    return None


# ----------------------------------------------------------------------------- report


def _median(values: Sequence[float | None]) -> float | None:
    """The median of the runs, None when any run timed out (a miss is not averaged away)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def median_of(result: Mapping[str, Any], side: str, figure: str) -> float | None:
    """The median of one side's ``figure`` ("split" or "heal") over the runs."""
    return _median([run.get(side, {}).get(figure) for run in result.get("runs", [])])


def _secs(value: float | None, limit: float) -> str:
    return f"> {limit:g} s" if value is None else fmt(value)


def _cells(result: Mapping[str, Any], side: str, figure: str) -> str:
    limit = SPLIT_TIMEOUT if figure == "split" else HEAL_TIMEOUT
    values = [run.get(side, {}).get(figure) for run in result.get("runs", [])]
    every = ", ".join(_secs(v, limit) for v in values)
    return f"{_secs(median_of(result, side, figure), limit)} ({every})"


def partition_section(result: Mapping[str, Any]) -> list[str]:
    """The BENCHMARKS.md section: medians with every run's figure beside them."""
    title = "## Partition and heal (network namespaces, both clusters side by side)"
    if "error" in result:
        return [title, "", f"Not measured: {result['error']}", ""]
    groups = result.get("groups", [])
    shape = " | ".join(str(len(g)) for g in groups)
    runs = len(result.get("runs", []))
    lines = [
        title,
        "",
        f"{result['n']} nodes a side, each in its own network namespace (ours a `--netns`"
        " devnet in the production profile, Serf's agents on a second bridge). Each run cuts"
        f" both clusters {shape} at the same moment (the second half moves onto a bridge of"
        " its own: frames between the halves are lost silently), waits until every node lists"
        " the other half dead, then heals both at the same moment. Medians of"
        f" {runs} runs on the same clusters, every run in brackets; polled every {POLL:g} s."
        f" Run it with `python -m devnet.bench --parts partition --partition-runs {runs}`.",
        "",
        "| | ours | Serf | goal |",
        "|---|---:|---:|---:|",
        f"| cut → every node lists the other half dead | {_cells(result, 'chorus', 'split')}"
        f" | {_cells(result, 'Serf', 'split')} | |",
        f"| heal → every view lists all {result['n']} alive | {_cells(result, 'chorus', 'heal')}"
        f" | {_cells(result, 'Serf', 'heal')} | ≤ {HEAL_GOAL:g} s |",
        "",
    ]
    return lines
