"""``python -m devnet.bench`` (``make bench``): the devnet against Serf, side by side.

What is measured, each the same way on both sides (definitions also go into BENCHMARKS.md):

* convergence: from the moment the last node answers its API (our HTTP, Serf's RPC) to
  the first poll at which every node lists all n members alive;
* SIGKILL / SIGSTOP: from the signal to the first poll at which every other node lists
  the victim dead (Serf: failed);
* SIGTERM: from the signal to the first poll at which every other node lists it left.
  Serf agents run with leave_on_terminate, so SIGTERM is a graceful leave on both sides.

One cluster per run and size: start, converge, then kill node 2 (then restart it and wait
for agreement again), freeze node 3 (thaw it, agreement again), terminate node 4; the
cluster has n live members at every measurement. Polls go to every node in parallel, every
0.1 s up to 5 nodes, 0.15 s up to 10, 0.25 s beyond (the figures' resolution); the same
interval on both sides. Runs alternate which side goes first, so slow drift in the
machine's load spreads over both.

Then, at one size: memory (RSS) and idle CPU per node and cluster traffic per node over an
idle window with no polling (bytes on the nodes' libp2p / memberlist ports, counted on the
loopback interface with a raw socket); /health latency at a steady 50 requests a second
and throughput under wrk while the probes run. Then the false-alarm soak: both clusters
side by side with every core busy with a CPU hog, counting how often a live node was
reported dead. Last, the same count under random packet loss on every link, each node in
its own network namespace, and a SIGKILL timed at 20 % loss (devnet/bench_loss.py).

Everything measured is saved to ``<dir>/results.json`` as it comes in, so a report can be
re-rendered (``--render``) or a crashed run inspected.

This module is the command line on top; the bench's parts sit below it, each of one
concern, and import one way only (top to bottom): the orchestration of a run
(:mod:`devnet.bench_run`) and the report (:mod:`devnet.bench_report`); the parts with their
report sections (:mod:`devnet.bench_partition`, :mod:`devnet.bench_loss` with
:mod:`devnet.bench_loss_counts`, :mod:`devnet.bench_soak`, :mod:`devnet.bench_resources`)
and issue 13's goals table (:mod:`devnet.bench_goals`); the detection runs and the polling
every part waits with (:mod:`devnet.bench_detection`), the loopback traffic counter
(:mod:`devnet.bench_traffic`), the clusters measured (:mod:`devnet.bench_target`), the
results file (:mod:`devnet.bench_results`) and how figures are printed
(:mod:`devnet.bench_text`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from devnet.bench_report import write_report
from devnet.bench_results import PARTS
from devnet.bench_run import run
from devnet.bench_target import PROBE_INTERVAL
from devnet.cluster import DEFAULT_PROBE_INTERVAL, PROBE_SECONDS_PER_NODE, DevnetError

__all__ = ["build_parser", "main"]

DEFAULT_DIR = Path(".devnet/bench")


def sizes(raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 5,10,20, got {raw!r}") from None
    if not values or any(v < 5 or v > 60 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be 5 to 60 nodes, got {raw!r}")
    return values


def parts(raw: str) -> list[str]:
    chosen = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(PARTS))
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {raw!r}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.bench",
        description="Benchmark the devnet against Serf (Debian's serf, LAN profile) and write"
        " BENCHMARKS.md with a plot. Needs serf (apt-get install -y serf), wrk for the"
        " throughput figure (apt-get install -y wrk) and the bench extra (matplotlib,"
        " u-msgpack-python); the loss and partition parts need root and iproute2, the loss part"
        " nftables too. The full default run takes about 40 minutes, 10 of them the CPU soak,"
        " 16 the loss soak and a few the partition runs.",
    )
    parser.add_argument("--sizes", type=sizes, default=[5, 10, 20], help="default: 5,10,20")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default: 3)")
    parser.add_argument(
        "--resource-sizes",
        type=sizes,
        default=[5, 10, 20],
        help="cluster sizes for the cost figures (default: 5,10,20)",
    )
    # A whole period of the production DHT probe (60 s): 30 s windows one after another
    # on one idle 10-node cluster read 1.77, 2.15, 1.63 and 2.38 % of a core (2026-12-05),
    # depending on whether a round of probes fell in them. The figures used 60 s.
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="idle window for CPU/traffic (60)"
    )
    parser.add_argument("--load-seconds", type=float, default=15.0, help="/health load (15)")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="0 skips it (10)")
    parser.add_argument("--soak-size", type=int, default=10, help="nodes in the soak (10)")
    parser.add_argument(
        "--loss-minutes",
        type=float,
        default=10.0,
        help="packet-loss soak: half as long at each of 5 %%, 20 %% one way and 20 %% loss"
        " (1.5 times this in all); 0 skips it (10)",
    )
    parser.add_argument(
        "--loss-size", type=int, default=10, help="nodes per side in the loss soak (10)"
    )
    parser.add_argument(
        "--partition-runs",
        type=int,
        default=3,
        help="cut-and-heal runs of the partition part, both sides in namespaces; 0 skips it (3)",
    )
    parser.add_argument(
        "--partition-size", type=int, default=6, help="nodes per side, cut in halves (6)"
    )
    parser.add_argument(
        "--probe-interval",
        type=float,
        default=PROBE_INTERVAL,
        help="seconds between network probes on the devnet nodes (default: as `make devnet`:"
        f" {DEFAULT_PROBE_INTERVAL:g}, or {PROBE_SECONDS_PER_NODE:g} per node above"
        f" {DEFAULT_PROBE_INTERVAL / PROBE_SECONDS_PER_NODE:g} nodes)",
    )
    parser.add_argument(
        "--profile",
        choices=("production", "devnet"),
        default="production",
        help="the nodes' profile (default: %(default)s, the one operators run; devnet: the"
        " laptop profile of `make devnet`, with --probe-interval)",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="run our devnet without an admission policy (by default, as `make devnet`, the"
        " run's cluster authority certifies every node), to measure what admission costs",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (~5 min): 5 nodes, 1 run, short windows, 1 min soaks; writes into --dir"
        " unless --out is given",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="work folder (.devnet/bench)")
    parser.add_argument("--out", type=Path, default=None, help="report (BENCHMARKS.md)")
    parser.add_argument("--render", type=Path, default=None, help="re-render a results.json")
    parser.add_argument(
        "--parts",
        type=parts,
        default=list(PARTS),
        help="which parts to run, e.g. resources,soak: the others are kept from"
        " <dir>/results.json (default: runs,resources,soak,loss,partition)",
    )
    return parser


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (and SIGINT even where a shell ignored it for a background job) stop the
    # bench through its finally blocks, which take every node and agent down.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if args.quick:
        args.sizes, args.runs = [5], 1
        args.resource_sizes, args.soak_size = [5], 5
        args.idle_seconds, args.load_seconds, args.soak_minutes = 8.0, 4.0, 1.0
        args.loss_minutes, args.partition_runs = 1.0, 1
    out = args.out or (args.dir / "BENCHMARKS.md" if args.quick else Path("BENCHMARKS.md"))
    plot_path = out.with_suffix(".png")
    try:
        if args.render:
            results = json.loads(args.render.read_text())
        else:
            results = run(args)
        write_report(results, out, plot_path)
    except DevnetError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; partial results in", args.dir / "results.json", file=sys.stderr)
        return 1
    print(f"wrote {out} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
