"""The bench's false-alarm soak: both clusters side by side with every core busy with a CPU
hog, counting how often a live node was reported dead; with its section of the report.

The loss soak (:mod:`devnet.bench_loss`) counts the same way and reads the same records:
the wall-clock times in our views' histories (:func:`wall_time`) and Serf's logs from where
they stood when the soak began (:func:`log_offsets`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from devnet.bench_detection import CONVERGE_TIMEOUT, all_alive, poll_until
from devnet.bench_target import ChorusTarget, Target
from devnet.cluster import get_json, pdeathsig_preexec
from devnet.serf import SerfCluster

__all__ = ["cpu_hogs", "log_offsets", "soak", "soak_section", "wall_time"]


@contextlib.contextmanager
def cpu_hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy-looping processes (one per core), killed on the way out."""
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            start_new_session=True,
            preexec_fn=pdeathsig_preexec(),
        )
        for _ in range(count)
    ]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(10)


def soak(
    targets: Sequence[Target],
    n: int,
    minutes: float,
    say: Callable[[str], None],
    serf_logs: Path | None,
) -> dict[str, Any]:
    """Run the clusters side by side under CPU hogs; count live nodes reported dead.

    Counted per (observer, peer) as a change of state into dead between two polls (every
    second), plus, for us, the transitions into dead in each peer's history at the end (a
    short false alarm between two polls still shows there), and for Serf the
    EventMemberFailed lines its agents log (each is one observer declaring one member
    failed). Nothing is killed during the soak, so every such report is a false alarm.
    """
    converged: dict[str, bool] = {}
    for target in targets:
        target.start(n)
        # The soak runs even if a cluster never agreed: what it reports is still the count.
        converged[target.name] = (
            poll_until(
                target, all_alive(set(range(1, n + 1))), timeout=CONVERGE_TIMEOUT, interval=0.5
            )
            is not None
        )
    offsets = log_offsets(serf_logs)
    began_wall = time.time()
    counts: dict[str, dict[str, int]] = {
        t.name: {"dead": 0, "suspect": 0, "polls": 0, "unanswered": 0} for t in targets
    }
    previous: dict[str, dict[tuple[int, int], str]] = {t.name: {} for t in targets}
    cores = os.cpu_count() or 2
    say(f"soak: {minutes:g} min at {n} nodes with {cores} CPU hogs")
    with cpu_hogs(cores):
        end = time.monotonic() + minutes * 60
        report_at = time.monotonic() + 60
        while time.monotonic() < end:
            began = time.monotonic()
            for target in targets:
                views = target.views()
                seen = counts[target.name]
                seen["polls"] += 1
                seen["unanswered"] += n - len(views)
                for observer, members in views.items():
                    for member, state in members.items():
                        key = (observer, member)
                        last = previous[target.name].get(key, "alive")
                        if state != last and state in ("dead", "suspect"):
                            seen[state] += 1
                        previous[target.name][key] = state
            if time.monotonic() >= report_at:
                report_at += 60
                say(f"soak: {(end - time.monotonic()) / 60:.0f} min left, {_tallies(counts)}")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        history = {
            t.name: _history_dead(t, began_wall) for t in targets if isinstance(t, ChorusTarget)
        }
    out: dict[str, Any] = {"n": n, "minutes": minutes, "hogs": cores}
    for target in targets:
        tally: dict[str, Any] = dict(counts[target.name])
        tally["converged_before"] = converged[target.name]
        if target.name in history:
            tally["dead_in_history"] = history[target.name]
        if isinstance(target, SerfCluster) and serf_logs is not None:
            tally["dead_in_logs"] = _serf_failed_events(serf_logs, offsets)
        tally["false_dead"] = max(
            tally["dead"], tally.get("dead_in_history", 0), tally.get("dead_in_logs", 0)
        )
        out[target.name] = tally
    say(f"soak done: {_tallies(counts)}")
    return out


def _tallies(counts: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        f"{name}: {c['dead']} dead, {c['suspect']} suspect" for name, c in counts.items()
    )


def _history_dead(target: ChorusTarget, since_wall: float) -> int:
    """Transitions into dead, after ``since_wall``, in every node's per-peer history."""
    total = 0
    for rec in target.devnet.state().nodes.values():
        code, body = get_json(rec.http_url + "/health/cluster", timeout=5.0)
        if code != 200 or not isinstance(body, dict):
            continue
        for peer in body.get("peers", []):
            for step in peer.get("history", []):
                if step.get("to") == "dead" and wall_time(step.get("at")) >= since_wall:
                    total += 1
    return total


def wall_time(stamp: object) -> float:
    """An RFC 3339 time from a view's history as Unix seconds; 0.0 if it is not one."""
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def log_offsets(folder: Path | None) -> dict[Path, int]:
    """Where each Serf agent's log in ``folder`` ends now: counts start there."""
    if folder is None:
        return {}
    return {log: log.stat().st_size for log in folder.glob("serf*.log")}


def _serf_failed_events(folder: Path, offsets: dict[Path, int]) -> int:
    total = 0
    for log in folder.glob("serf*.log"):
        with log.open("rb") as handle:
            handle.seek(offsets.get(log, 0))
            total += handle.read().count(b"EventMemberFailed")
    return total


# ---------------------------------------------------------------------------- report


def soak_section(soak_result: dict[str, Any]) -> list[str]:
    lines = [
        f"## False alarms under CPU starvation ({soak_result['minutes']:g} min,"
        f" {soak_result['n']} nodes each, {soak_result['hogs']} CPU hogs, both clusters side by"
        " side)",
        "",
        "A live node reported dead by one observer counts once. Nothing was killed, so every"
        " report is a false alarm.",
        "",
        "| | live nodes reported dead | suspicions seen | polls unanswered |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("chorus", "ours"), ("Serf", "Serf")):
        tally = soak_result.get(name)
        if not tally:
            continue
        suspect = str(tally["suspect"]) if name == "chorus" else "not exposed"
        detail = []
        if "dead_in_history" in tally:
            detail.append(f"{tally['dead_in_history']} in the views' histories")
        if "dead_in_logs" in tally:
            detail.append(f"{tally['dead_in_logs']} EventMemberFailed logged")
        detail.append(f"{tally['dead']} seen by 1 s polls")
        lines.append(
            f"| {label} | {tally['false_dead']} ({', '.join(detail)}) | {suspect} |"
            f" {tally['unanswered']} of {tally['polls'] * soak_result['n']} |"
        )
    unconverged = [
        label
        for name, label in (("chorus", "ours"), ("Serf", "Serf"))
        if soak_result.get(name, {}).get("converged_before") is False
    ]
    if unconverged:
        lines += [
            "",
            f"Never agreed before the hogs started (within {CONVERGE_TIMEOUT:.0f} s):"
            f" {', '.join(unconverged)}; its count includes nodes it had not yet seen alive.",
        ]
    lines.append("")
    return lines
