"""The scaling table: ``python -m devnet.simulator.scaling``.

Runs the scenarios that make issue 15's table (join, crash, freeze, starve) at each size and
loss, keeps every figure in a JSON file (``--out``; a later run adds to it, so a long matrix
can be run in parts), and prints the table with memberlist's published formulas and
scalecube's published figures beside ours. ``--render FILE`` prints the table of a saved
file without running anything.

Every figure is the simulator's (virtual time and counts; a seed gives the same figures on
any host), on the production presets. Traffic is the idle scenario's (a running cluster
where nothing happens; the crash scenario's window where no idle run was made), per node
and second, payload bytes (no TCP/IP headers).

``--sample S`` runs the sizes above S with only S full nodes (a view each) and the rest as
light nodes (``devnet.simulator.light``), so 10,000 nodes fit in memory; every figure of
such a row is its full nodes', and the table says which rows were sampled. Joins need every
node's view, so they are not run sampled. A view holds at most ``max_members`` (1,024 in
an open cluster, 16,384 where members are certified) and refuses the rest:
``--max-members`` sets it for other sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from devnet.simulator.scenarios import Result, Settings, run
from mesh.cluster_config import certified, production

__all__ = ["SCENARIOS", "figures", "main", "memberlist_crash", "render"]

SCENARIOS = ("join", "crash", "freeze", "starve", "idle")
# Issue 15's goals at 1,000 nodes with 1 % loss.
GOAL_NODES, GOAL_LOSS = 1000, 0.01
GOAL_CRASH_P99, GOAL_BYTES = 2.0, 1000.0
# The anchor issue 15 gives for a gossip membership at scale.
SCALECUBE = (
    "scalecube-cluster, as issue 15 quotes its reports: 200 nodes, 1 % loss, "
    "dissemination in 3.6 s, about 580 B/s a node"
)


def memberlist_suspicion(n: int) -> float:
    """memberlist's suspicionTimeout at LAN defaults: SuspicionMult 4 * log10(n) * 1 s."""
    return 4 * max(1.0, math.log10(max(1, n))) * 1.0


def memberlist_crash(n: int) -> float:
    """A crash seen dead in memberlist, LAN defaults, roughly: the member is probed about
    once a ProbeInterval (1 s: 0.5 s to the next probe on average), the probe and its
    indirect probes time out (ProbeTimeout 0.5 s, then up to the interval's end), then the
    suspicion's minimum once confirmed. Serf measured 5.6-7.0 s at 5-20 nodes here."""
    return 1.5 + memberlist_suspicion(n)


def figures(result: Result) -> dict[str, Any]:
    """What the table keeps of one run."""
    s = result.settings
    per = max(1e-9, result.window * (result.full or s.nodes))  # over the measured nodes
    return {
        "scenario": s.scenario,
        "nodes": s.nodes,
        "loss": s.loss,
        "seed": s.seed,
        "open": s.open,
        "full": result.full or s.nodes,  # nodes with a view, the measured ones
        "max_members": certified(s.config, not s.open).max_members,  # as the run had it
        "seen": len(result.seen),
        "observers": result.observers,
        "p50": result.percentile(0.5),
        "p99": result.percentile(0.99),
        "converged": result.converged_at,
        "false_deaths": result.false_deaths,
        "msgs": result.messages / per,
        "bytes": result.bytes / per,
        "by_kind": {k: v / per for k, v in sorted(result.by_kind.items())},
        # Messages published in the whole cluster a minute, by kind: what the topic carries.
        "published_per_min": {
            k: v * 60 / result.window for k, v in sorted(result.published.items())
        },
    }


def _key(entry: dict[str, Any]) -> tuple[str, int, float, int, bool]:
    return (entry["scenario"], entry["nodes"], entry["loss"], entry["seed"], _open(entry))


def _open(entry: dict[str, Any]) -> bool:
    return bool(entry.get("open", False))


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def render(entries: list[dict[str, Any]]) -> str:
    """The table of the admitted runs (an admission policy, as the ops kit deploys), then
    that of the open ones, if any."""
    admitted = [e for e in entries if not _open(e)]
    opened = [e for e in entries if _open(e)]
    parts = [_render(admitted)] if admitted else []
    if opened:
        table = _render(opened, judged=False)
        parts.append("Open cluster (no admission policy: witnesses not trusted):\n\n" + table)
    return "\n\n".join(parts)


def _render(entries: list[dict[str, Any]], *, judged: bool = True) -> str:
    by = {(e["scenario"], e["nodes"], e["loss"]): e for e in entries}
    sizes = sorted({e["nodes"] for e in entries})
    losses = sorted({e["loss"] for e in entries})
    lines = [
        "| nodes | loss | join: converged | crash p50 | crash p99 | freeze p50 | freeze p99 "
        "| false deaths, 5 % starved | msgs/node/s | B/node/s "
        "| memberlist: suspicion min | memberlist: crash ~ |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for loss in losses:
            join, crash = by.get(("join", n, loss)), by.get(("crash", n, loss))
            freeze, starve = by.get(("freeze", n, loss)), by.get(("starve", n, loss))
            rest = by.get(("idle", n, loss)) or crash
            if not any((join, crash, freeze, starve, rest)):
                continue

            def cell(entry: dict[str, Any] | None, key: str) -> str:
                return "-" if entry is None else _s(entry[key])

            lines.append(
                f"| {n:,} | {loss * 100:g} % | {cell(join, 'converged')} "
                f"| {cell(crash, 'p50')} | {cell(crash, 'p99')} "
                f"| {cell(freeze, 'p50')} | {cell(freeze, 'p99')} "
                f"| {'-' if starve is None else starve['false_deaths']} "
                f"| {'-' if rest is None else format(rest['msgs'], '.1f')} "
                f"| {'-' if rest is None else format(rest['bytes'], ',.0f')} "
                f"| {memberlist_suspicion(n):.0f} s | {memberlist_crash(n):.1f} s |"
            )
    sampled = sorted({(e["nodes"], e.get("full", e["nodes"])) for e in entries})
    if any(full < n for n, full in sampled):
        rows = ", ".join(f"{n:,} nodes with {full} full" for n, full in sampled if full < n)
        lines += ["", f"Sampled rows, figures over their full nodes only: {rows}."]
    capped = sorted(
        {
            (e["nodes"], e["max_members"])
            for e in entries
            if e.get("max_members", 2**31) < e["nodes"]
        }
    )
    if capped:
        rows = ", ".join(f"{m:,} members at {n:,} nodes" for n, m in capped)
        lines += ["", f"Views full (the rest refused, VIEW_FULL): {rows}."]
    if not judged:
        return "\n".join(lines)
    lines += ["", f"Anchor: {SCALECUBE}.", ""]
    goal = by.get(("crash", GOAL_NODES, GOAL_LOSS))
    starve = by.get(("starve", GOAL_NODES, GOAL_LOSS))
    rest = by.get(("idle", GOAL_NODES, GOAL_LOSS)) or goal
    if goal is not None and rest is not None:
        p99 = goal["p99"]
        checks = [
            ("crash seen by every node, p99", _s(p99), f"<= {GOAL_CRASH_P99:g} s",
             p99 is not None and p99 <= GOAL_CRASH_P99),
            ("traffic per node" + (", idle" if rest is not goal else ""),
             f"{rest['bytes']:,.0f} B/s", f"<= {GOAL_BYTES:,.0f} B/s",
             rest["bytes"] <= GOAL_BYTES),
        ]  # fmt: skip
        if starve is not None:
            checks.append(("false deaths, 5 % starved", str(starve["false_deaths"]), "0",
                           starve["false_deaths"] == 0))  # fmt: skip
        lines += [
            f"Goals at {GOAL_NODES:,} nodes, {GOAL_LOSS * 100:g} % loss:",
            "",
            "| goal | simulated | goal | met |",
            "|---|---:|---:|:-:|",
        ]
        lines += [f"| {g} | {v} | {t} | {'yes' if ok else '**no**'} |" for g, v, t, ok in checks]
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.simulator.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=_ints, default=[10, 100, 1000])
    parser.add_argument("--loss", type=_floats, default=[0.0, 0.01], help="0.01 = 1 %%")
    parser.add_argument(
        "--scenarios", type=lambda t: [s for s in t.split(",") if s], default=list(SCENARIOS)
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--open", action="store_true", help="no admission policy")
    parser.add_argument("--sample", type=int, default=0, help="full nodes per run (0: all)")
    parser.add_argument(
        "--max-members", type=int, default=0, help="members a view holds (0: the preset's)"
    )
    parser.add_argument("--out", type=Path, help="JSON file to add the figures to")
    parser.add_argument("--render", type=Path, help="print the table of a saved file and exit")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (of {', '.join(SCENARIOS)})")
    path = args.render or args.out
    entries: list[dict[str, Any]] = []
    if path is not None and path.exists():
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            parser.exit(2, f"{path} is not a scaling results file: {exc}\n")
    config = production()
    if args.max_members:
        config = dataclasses.replace(config, max_members=args.max_members)
    if args.render is None:
        for scenario in args.scenarios:
            for n in args.nodes:
                for loss in args.loss:
                    if scenario == "join" and 0 < args.sample < n:
                        print(f"join at {n} nodes skipped: joins are not sampled", file=sys.stderr)
                        continue
                    settings = Settings(
                        nodes=n,
                        scenario=scenario,
                        loss=loss,
                        seed=args.seed,
                        open=args.open,
                        sample=args.sample,
                        config=config,
                    )
                    result = run(settings)
                    entry = figures(result)
                    entries = [e for e in entries if _key(e) != _key(entry)] + [entry]
                    if args.out is not None:
                        args.out.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    print(render(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
