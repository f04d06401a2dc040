"""Issue 13's goals as one table at the top of BENCHMARKS.md, from a bench's results.

Every goal is listed whether it was met or not: a miss stays in the table, marked, with
what was measured. The figures are the ones the sections below report (medians of the
runs; cost at 10 nodes over the bench's idle window), so the table can never disagree with
them. A part that did not run says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devnet.bench_detection import summarise
from devnet.bench_loss import phase_name
from devnet.bench_partition import HEAL_GOAL, median_of

__all__ = ["COST_SIZE", "goals_section"]

COST_SIZE = 10  # the cost goals are per node at 10 nodes
TIE = 0.01  # seconds

# metric, label, goal in seconds (None: no slower than Serf)
DETECTION = (
    ("kill", "SIGKILL → dead at every other node", 1.0),
    ("freeze", "SIGSTOP → dead at every other node", 3.0),
    ("leave", "SIGTERM → left at every other node", 0.5),
    ("converge", "last node ready → full agreement", None),
)
# resources key, label, goal, unit, digits
COST = (
    ("bytes_per_second", "idle cost per node: traffic sent", 3000.0, "B/s", 0),
    ("packets_per_second", "idle cost per node: packets sent", 20.0, "/s", 1),
    ("cpu_percent", "idle cost per node: CPU (% of one core)", 1.5, "%", 2),
    ("rss_mib", "idle cost per node: memory (RSS)", 95.0, "MiB", 1),
)


def _num(value: float | None, unit: str = "s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else "yes" if ok else "**no**"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else ""


def goals_section(results: Mapping[str, Any]) -> list[str]:
    """The table, from the results bench_run.run() saves."""
    rows = ["| goal (production profile) | nodes | ours | Serf | ratio | goal | met |"]
    rows.append("|---|---:|---:|---:|---:|---:|:-:|")
    table = summarise(dict(results))
    for metric, label, goal in DETECTION:
        for n, cell in sorted(table.get(metric, {}).items()):
            ours = cell.get("chorus", {}).get("median")
            theirs = cell.get("Serf", {}).get("median")
            failed = cell.get("chorus", {}).get("failed", 0)
            limit = goal if goal is not None else theirs
            # Within a hundredth of a second is a tie: both sides' polls are coarser.
            ok = None if ours is None or limit is None else ours <= limit + TIE and not failed
            shown = f"{goal:g} s" if goal is not None else "≤ Serf"
            rows.append(
                f"| {label} | {n} | {_num(ours)} | {_num(theirs)} | {_ratio(ours, theirs)}"
                f" | {shown} | {_met(ok)} |"
            )
    sizes = results.get("resources", {}).get("sizes", {})
    cost = sizes.get(str(COST_SIZE), {})
    for key, label, goal, unit, digits in COST:
        ours = cost.get("chorus", {}).get(key)
        theirs = cost.get("Serf", {}).get(key)
        ok = None if ours is None else ours <= goal
        rows.append(
            f"| {label} | {COST_SIZE} | {_num(ours, unit, digits)} | {_num(theirs, unit, digits)}"
            f" | {_ratio(ours, theirs)} | {goal:g} {unit} | {_met(ok)} |"
        )
    rows += _soaks(results)
    rows += _partition(results)
    return [
        "### Issue 13's goals, this run",
        "",
        "Medians of the runs below; cost per node at 10 nodes over the bench's idle window"
        " right after convergence.",
        "",
        *rows,
        "",
    ]


def _soaks(results: Mapping[str, Any]) -> list[str]:
    rows = []
    soak = results.get("soak")
    if soak and "chorus" in soak:
        ours, theirs = soak["chorus"]["false_dead"], soak.get("Serf", {}).get("false_dead")
        rows.append(
            f"| no live node reported dead, {soak['minutes']:g} min, {soak['hogs']} CPU hogs"
            f" | {soak['n']} | {ours} | {theirs if theirs is not None else 'n/a'} | | 0"
            f" | {_met(ours == 0)} |"
        )
    loss = results.get("loss")
    if loss and loss.get("phases"):
        for phase in loss["phases"]:
            ours = _worst_dead(phase.get("chorus", {}), "history")
            theirs = _worst_dead(phase.get("Serf", {}), "logged", "failed")
            name = phase_name(phase["percent"], bool(phase.get("one_way")))
            rows.append(
                f"| no live node reported dead, {name},"
                f" {phase['minutes']:g} min | {loss['n']} | {ours} | {theirs} | | 0"
                f" | {_met(ours == 0)} |"
            )
        kill = loss.get("kill", {})
        rows.append(
            f"| SIGKILL at {loss.get('kill_percent', 20)} % loss → dead everywhere"
            f" | {loss['n']} | {_num(kill.get('chorus'))} | {_num(kill.get('Serf'))}"
            f" | {_ratio(kill.get('chorus'), kill.get('Serf'))} | | |"
        )
    return rows


def _worst_dead(tally: Mapping[str, Any], extra: str, key: str = "dead") -> int:
    """The larger of what the polls saw and what the histories (or logs) hold."""
    return max(int(tally.get("dead", 0)), int(tally.get(extra, {}).get(key, 0) or 0))


def _partition(results: Mapping[str, Any]) -> list[str]:
    part = results.get("partition")
    if not part or not part.get("runs"):
        return []
    ours, theirs = median_of(part, "chorus", "heal"), median_of(part, "Serf", "heal")
    shape = " and ".join(str(len(g)) for g in part.get("groups", []))
    return [
        f"| partition into {shape} healed → every view agrees | {part['n']} | {_num(ours)}"
        f" | {_num(theirs)} | {_ratio(ours, theirs)} | {HEAL_GOAL:g} s"
        f" | {_met(None if ours is None else ours <= HEAL_GOAL)} |"
    ]
