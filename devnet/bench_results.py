"""The bench's results: what ``<dir>/results.json`` holds and where each part of it comes
from.

A run saves everything measured as it comes in, so a report can be re-rendered
(``--render``) or a crashed run inspected. A run of only some parts (``--parts``) starts from
the saved results and keeps the other parts, with the commit each was measured at.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

from devnet.cluster import REPO_ROOT

__all__ = ["PARTS", "load_earlier", "machine_meta", "new_results", "part_commits"]

PARTS = ("runs", "resources", "soak", "loss", "partition")


def load_earlier(path: Path, parts: Sequence[str]) -> dict[str, Any]:
    """The saved results a run of only some ``parts`` builds on; empty for a full run."""
    earlier: dict[str, Any] = {}
    if set(parts) != set(PARTS) and path.exists():
        earlier = json.loads(path.read_text())
    return earlier


def new_results(args: argparse.Namespace, serf: str, earlier: dict[str, Any]) -> dict[str, Any]:
    """This run's results before anything is measured: its machine and commit, and the
    parts it does not run as ``earlier`` has them."""
    results: dict[str, Any] = {
        "meta": machine_meta(args, serf),
        "runs": earlier.get("runs", []),
        "resources": earlier.get("resources", {}),
    }
    for part in ("soak", "loss", "partition"):
        if part in earlier:
            results[part] = earlier[part]
    results["meta"]["part_commits"] = part_commits(
        earlier.get("meta", {}), args.parts, results["meta"]["commit"]
    )
    if earlier:
        results["meta"]["runs"] = earlier.get("meta", {}).get("runs", args.runs)
        results["meta"]["sizes"] = earlier.get("meta", {}).get("sizes", args.sizes)
    return results


def part_commits(earlier: dict[str, Any], parts: list[str], commit: str) -> dict[str, str]:
    """The commit each part of the results was measured at: the parts run now at
    ``commit``, the others at whatever the earlier results say."""
    before = earlier.get("part_commits") or dict.fromkeys(PARTS, earlier.get("commit", "unknown"))
    return {part: commit if part in parts else str(before.get(part, "unknown")) for part in PARTS}


def machine_meta(args: argparse.Namespace, serf: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    if commit and dirty:
        commit += " with uncommitted changes"
    return {
        "command": "make bench" if not args.quick else "python -m devnet.bench --quick",
        "argv": sys.argv[1:],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "kernel": f"Linux {platform.release()}",
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "serf": serf,
        "probe_interval": args.probe_interval,
        "admission": not args.open,
        "profile": args.profile,
        "runs": args.runs,
        "sizes": args.sizes,
    }


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=10
    ).stdout.strip()
