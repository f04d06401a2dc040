"""The bench's orchestration: run the chosen parts one after another, each on clusters of
its own, and save what comes in after every step.

Detection runs alternate which side goes first, so slow drift in the machine's load spreads
over both. Then, at each cost size, the cost part (:mod:`devnet.bench_resources`); the CPU
soak (:mod:`devnet.bench_soak`); the loss soak (:mod:`devnet.bench_loss`) and the partition
runs (:mod:`devnet.bench_partition`), which need root and namespaces: where they fail, the
other parts still make a report, which says why that one is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any

from devnet.bench_detection import one_run
from devnet.bench_loss import loss_soak
from devnet.bench_partition import partition_heal
from devnet.bench_resources import HEALTH_RATE, resources, steady_latency, wrk_throughput
from devnet.bench_results import load_earlier, new_results
from devnet.bench_soak import soak
from devnet.bench_target import ChorusTarget, Target
from devnet.cluster import DevnetError
from devnet.serf import SerfCluster, serf_version

__all__ = ["run"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen parts, one after another, saving the results after each step."""
    began = time.monotonic()
    serf = serf_version()
    args.dir.mkdir(parents=True, exist_ok=True)
    results_path = args.dir / "results.json"
    earlier = load_earlier(results_path, args.parts)
    results = new_results(args, serf, earlier)
    spent_before = float(earlier.get("meta", {}).get("duration_min", 0.0))

    def save() -> None:
        results["meta"]["duration_min"] = spent_before + (time.monotonic() - began) / 60
        results_path.write_text(json.dumps(results, indent=2))

    def say(text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=sys.stderr, flush=True)

    def make(name: str) -> Target:
        if name == "chorus":
            return ChorusTarget(
                args.dir / "chorus",
                args.probe_interval,
                admission=not args.open,
                profile=args.profile,
            )
        shutil.rmtree(args.dir / "serf", ignore_errors=True)
        return SerfCluster(args.dir / "serf")

    if "runs" in args.parts:
        results["runs"] = []
        for n in args.sizes:
            for r in range(args.runs):
                order = ("chorus", "Serf") if r % 2 == 0 else ("Serf", "chorus")
                for name in order:
                    target = make(name)
                    entry: dict[str, Any] = {"target": name, "n": n, "run": r + 1}
                    try:
                        entry.update(one_run(target, n, say))
                    except DevnetError as exc:
                        say(f"{name} n={n} run {r + 1} failed: {exc}")
                        entry["error"] = str(exc)
                    finally:
                        target.close()
                    results["runs"].append(entry)
                    save()

    if "resources" in args.parts:
        results["resources"] = {"sizes": {}}
        for n in args.resource_sizes:
            cell: dict[str, Any] = {}
            results["resources"]["sizes"][str(n)] = cell
            for name in ("chorus", "Serf"):
                target = make(name)
                try:
                    cell[name] = resources(target, n, args.idle_seconds, say)
                    if isinstance(target, ChorusTarget):
                        url = target.health_url(1)
                        cell["health_steady"] = steady_latency(url, HEALTH_RATE, args.load_seconds)
                        cell["health_wrk"] = wrk_throughput(url, args.load_seconds)
                        say(f"/health at {n} nodes: {cell['health_steady']}")
                        say(f"/health under wrk at {n} nodes: {cell['health_wrk']}")
                except DevnetError as exc:
                    say(f"{name} cost at n={n} failed: {exc}")
                    cell[name] = {"n": n, "error": str(exc)}
                finally:
                    target.close()
                save()

    if "soak" in args.parts and args.soak_minutes > 0:
        targets: list[Target] = [make("chorus"), make("Serf")]
        try:
            results["soak"] = soak(
                targets, args.soak_size, args.soak_minutes, say, args.dir / "serf"
            )
        finally:
            for target in targets:
                target.close()
        save()

    if "loss" in args.parts and args.loss_minutes > 0:
        try:
            results["loss"] = loss_soak(
                args.dir / "loss",
                args.loss_size,
                args.loss_minutes,
                say,
                admission=not args.open,
                profile=args.profile,
            )
        except DevnetError as exc:
            # Namespaces need root, iproute2 and nftables: without them the other parts
            # still make a report, which says why this one is missing.
            say(f"loss soak failed: {exc}")
            results["loss"] = {"n": args.loss_size, "minutes": args.loss_minutes, "error": str(exc)}
        save()

    if "partition" in args.parts and args.partition_runs > 0:
        try:
            results["partition"] = partition_heal(
                args.dir / "partition",
                args.partition_size,
                args.partition_runs,
                say,
                admission=not args.open,
                profile=args.profile,
            )
        except DevnetError as exc:
            say(f"partition part failed: {exc}")
            results["partition"] = {"n": args.partition_size, "error": str(exc)}
        save()
    save()
    return results
