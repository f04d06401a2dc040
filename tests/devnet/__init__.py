"""Tests of the devnet (devnet/cluster.py, table.py, commands*.py) and the benchmark logic."""

from typing import Any


def bench_meta(**changes: Any) -> dict[str, Any]:
    """The ``meta`` of a bench's results.json, as render_markdown reads it."""
    return {
        "command": "make bench", "date": "today", "duration_min": 1, "cpu": "cpu", "cores": 2,
        "memory_gib": 24, "kernel": "Linux", "python": "3.11", "commit": "abc",
        "probe_interval": None, "serf": "Serf v0.8.2", "runs": 1,
    } | changes  # fmt: skip
