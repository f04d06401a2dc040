"""The Markdown table ``python -m devnet.scale_run`` prints (and BENCHMARKS.md keeps): the
real run beside the simulator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render"]


def _s(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} s"


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f} s" if values else "n/a"


def _back(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "n/a"
    back = cell.get("back")
    return f"not within {cell.get('agree_timeout', 120):.0f} s" if back is None else _s(back)


def render(result: dict[str, Any]) -> str:
    """The Markdown section for BENCHMARKS.md."""
    real, sim = result.get("real", {}), result.get("sim", {})
    n, loss = result["n"], result["loss_percent"]
    idle, sidle = real.get("idle", {}), sim.get("idle", {})

    def det(cell: dict[str, Any]) -> str:
        if not cell:
            return "n/a"
        seen = f" ({cell['seen']} of {cell['observers']} saw it)" if cell.get("p99") is None else ""
        return f"{_s(cell.get('p50'))} / {_s(cell.get('p99'))}{seen}"

    args = " ".join(result.get("node_args", [])) or "none"
    rows = [
        (
            "join: last node ready → every view agrees",
            _s(real.get("converge")),
            _s(sim.get("join", {}).get("median")),
        ),
        (
            "crash (SIGKILL node 2): seen dead, p50 / p99 of observers",
            det(real.get("crash", {})),
            det(sim.get("crash", {})),
        ),
        (
            "freeze (SIGSTOP node 3): seen dead, p50 / p99 of observers",
            det(real.get("freeze", {})),
            det(sim.get("freeze", {})),
        ),
        ("back: node 2 restarted → every view agrees", _back(real.get("crash")), "-"),
        ("back: node 3 thawed → every view agrees", _back(real.get("freeze")), "-"),
        ("false deaths", str(real.get("false_deaths", "n/a")), str(sim.get("false_deaths", "n/a"))),
        (
            "idle: sent per node",
            f"{idle.get('bytes_per_s', 0):,.0f} B/s",
            f"{sidle.get('bytes_per_s', 0):,.0f} B/s (no active probes)",
        ),
        (
            "idle: packets (real) or messages (simulator) per node",
            f"{idle.get('packets_per_s', 0):.1f}/s",
            f"{sidle.get('messages_per_s', 0):.1f}/s",
        ),
        (
            "idle: CPU, RSS per node",
            f"{idle.get('cpu_percent', 0):.2f} %, {idle.get('rss_mib', 0):.0f} MiB",
            "-",
        ),
    ]
    lines = [
        f"### The real devnet at {n} nodes, {loss} % loss, beside the simulator",
        "",
        f"`python -m devnet.scale_run --nodes {n} --loss {loss}` at {result.get('commit')}"
        f" ({result.get('date')}): {n} nodes of the production profile, each in its own"
        f" network namespace, every link losing {loss} % of its packets at random (measured"
        f" {100 * (real.get('measured_loss') or 0):.2f} %); node arguments: {args}. Nodes"
        f" started one after another, each once the views before it agreed (mean"
        f" {real.get('start_interval', 0):.1f} s apart; a node's own start took"
        f" {_range(real.get('start_seconds', []))}). Detection times per observer come from"
        " the views' own transition histories. The simulator: median over seeds"
        f" {sim.get('seeds')}, same size and loss, its join with the same interval between"
        " starts.",
        "",
        *([f"The real run stopped early: {real['error']}", ""] if real.get("error") else []),
        f"| {n} nodes, {loss} % loss | real devnet | simulator |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    return "\n".join(lines)
