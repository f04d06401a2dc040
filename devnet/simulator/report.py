"""The table a run prints, and the memory figure of one view.

Every figure in the table comes from virtual time and counts, never from the host's clock,
so the same seed prints the same bytes. (Wall-clock cost is printed apart, by the CLI.)
A sampled run's figures are its full nodes' only; its "nodes" cell says how many were full.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Any

from devnet.simulator.scenarios import Result

__all__ = ["HEADERS", "deep_size", "row", "table"]

HEADERS = (
    "scenario",
    "nodes",
    "loss",
    "seed",
    "seen by",
    "p50 s",
    "p99 s",
    "max s",
    "converged s",
    "false deaths",
    "admins",
    "msgs/node/s",
    "B/node/s",
    "gossip B %",
    "retransmits",
    "rejected",
    "view members",
    "view KiB",
)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def row(result: Result, view_bytes: int) -> tuple[str, ...]:
    s = result.settings
    n = s.nodes
    per = result.window * (result.full or n)  # over the measured (full) nodes
    gossip = result.by_kind.get("gossip", 0)
    rejected = ",".join(f"{k}:{v}" for k, v in sorted(result.rejected.items())) or "0"
    detection = s.scenario in ("crash", "freeze", "leave")
    return (
        s.scenario,
        str(n) if result.full in (0, n) else f"{n} ({result.full} full)",
        f"{s.loss * 100:g} %",
        str(s.seed),
        f"{len(result.seen)}/{result.observers}" if detection else "-",
        _s(result.percentile(0.5)) if detection else "-",
        _s(result.percentile(0.99)) if detection else "-",
        _s(max(result.seen)) if detection and result.seen else "-",
        _s(result.converged_at) if s.scenario == "join" else "-",
        str(result.false_deaths),
        str(result.admins),
        f"{result.messages / per:.1f}",
        f"{result.bytes / per:.0f}",
        f"{100 * gossip / max(1, result.bytes):.0f}",
        str(result.retransmits),
        rejected,
        str(result.view_members),
        f"{view_bytes / 1024:.0f}",
    )


def table(rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (readable as is in a terminal)."""
    body = [tuple(HEADERS), *[tuple(r) for r in rows]]
    widths = [max(len(r[i]) for r in body) for i in range(len(HEADERS))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def deep_size(root: object) -> int:
    """Bytes held by ``root`` and everything it reaches, each object counted once: what one
    node's view costs in memory (sys.getsizeof of every object: CPython's own figure)."""
    seen: set[int] = set()
    stack: list[Any] = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict | MappingProxyType):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif isinstance(obj, str | bytes | int | float | bool) or obj is None:
            continue
        else:
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
            if hasattr(obj, "__dict__"):
                # As a plain dict of its items: CPython shares an instance dict's keys with
                # the class's other instances once one exists, so the live object's size
                # depends on what ran before in the process, and a seed must print the same.
                stack.append(dict(obj.__dict__))
    return total
