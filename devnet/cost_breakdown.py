"""Idle cost per node of a production-profile devnet, broken down by protocol.

A measurement tool, not product code. It starts ``python -m devnet up --detach
--profile production`` (N nodes on 127.0.0.1), waits for convergence and lets the cluster
settle, then over an idle window (no HTTP polling) measures per node: RSS and CPU (median,
% of one core), and the bytes and packets sent on the libp2p ports (IPv4 with headers,
outgoing copies on lo, as devnet/bench_traffic.py counts them), with pure ACKs apart.
Afterwards it scrapes a few counters (failed pings, connected peers) and stops the devnet.

--instrument loads devnet/costinst into the nodes, which count every TCP write by
protocol and kind (GossipSub RPCs by topic and control type); the per-protocol table is
printed and saved. It costs the nodes about half a point of CPU: compare instrumented
runs with instrumented runs.

--p2p, --cluster, --health, --tuning and --gossipsub take JSON objects of field overrides
(P2PConfig, ClusterConfig, the production HealthConfig, GossipTuning, GossipSub keyword
arguments); names are checked before anything starts.

The defaults already include the 2026-12 cost changes (adapters/yamux_credit.py, reused
ping streams, 30 s production refresh, no signed peer records on pubsub RPCs or Kademlia
answers, active checks reading the enhanced checks' probes, a found GET_VALUE record
answered alone, yamux RTT pings hourly, seen pubsub copies dropped before a task is
spawned, the node's imported heap frozen before its host starts: adapters/heap_freeze.py,
a risen score left to the refresh: adapters/publish_decisions.py); GossipSub's D is
4/3/6 (3/2/4 was measured, then reverted: see BENCHMARKS.md). The old settings can be
measured again with --p2p '{"ping_reuse_streams": false}' --cluster
'{"refresh_period": 5.0}'; the other changes have no switch.

The capture on lo uses an AF_PACKET socket: run as root (or with CAP_NET_RAW).

examples:
  python -m devnet.cost_breakdown -n 10 --window 120
  python -m devnet.cost_breakdown -n 10 --window 120 --instrument --out runs/base.json
  python -m devnet.cost_breakdown --p2p '{"ping_interval": 1.0}' --label ping-1s
  python -m devnet.cost_breakdown --cluster '{"refresh_period": 5.0}' -- --probe-interval 180
  python -m devnet.costinst.summarize protocols runs/base.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

from devnet.bench_traffic import LoopbackCounter
from devnet.costinst import _cost_hooks as hooks
from devnet.costinst.summarize import breakdown, render

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COSTINST = HERE / "costinst"
# Counters summed over the nodes' /metrics after the window.
SCRAPED = ("chorus_p2p_pings", "chorus_p2p_inbound_dropped", "chorus_p2p_connected_peers")


class Capture(LoopbackCounter):
    """bench_traffic.LoopbackCounter, TCP only, with the pure ACKs (no TCP payload) told apart."""

    def __init__(self, ports: set[int]) -> None:
        super().__init__(ports)
        self.ack_packets = self.ack_bytes = 0

    def count(self, ip: bytes) -> None:
        if ip[9] != 6:  # TCP only: libp2p's transport here
            return
        before = self.packets
        super().count(ip)
        if self.packets == before:
            return  # not our ports
        ihl = (ip[0] & 0x0F) * 4
        (total,) = struct.unpack("!H", ip[2:4])
        if total - ihl - (ip[ihl + 12] >> 4) * 4 == 0:
            self.ack_packets += 1
            self.ack_bytes += total


def run_devnet(
    args: argparse.Namespace, env: dict[str, str], *cmd: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devnet", *cmd],
        cwd=REPO,
        env=env,
        text=True,
        capture_output=True,
        timeout=args.timeout + 60,
    )


def node_env(args: argparse.Namespace, dump_dir: Path) -> dict[str, str]:
    """The nodes' environment: costinst first on PYTHONPATH when a hook is wanted, the
    COST_* variables of this run and no stale ones from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if k not in hooks.ENV_VARS}
    overrides = override_env(args)
    paths = [str(REPO)]
    if args.instrument or overrides:
        paths.insert(0, str(COSTINST))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    if args.instrument:
        env["COST_INSTRUMENT"] = "1"
        env["COST_OUT"] = str(dump_dir)
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def override_env(args: argparse.Namespace) -> dict[str, str]:
    pairs = {
        "COST_P2P": args.p2p,
        "COST_CLUSTER": args.cluster,
        "COST_HEALTH": args.health,
        "COST_TUNING": args.tuning,
        "COST_GOSSIPSUB": args.gossipsub,
        "COST_KAD_REFRESH": args.kad_refresh,
    }
    return {var: value for var, value in pairs.items() if value}


def check_overrides(args: argparse.Namespace) -> str | None:
    """Why the overrides cannot work, or None. Checked here so that a typo fails before a
    devnet starts, not as a load error in every node's log."""
    env = override_env(args)
    try:
        overrides = hooks.parse_overrides(env)
        if "COST_KAD_REFRESH" in env:
            float(env["COST_KAD_REFRESH"])
    except ValueError as exc:
        return f"bad override: {exc}"
    if not overrides:
        return None
    bad = hooks.unknown_fields(overrides, hooks.override_targets())
    return "unknown override field(s): " + ", ".join(bad) if bad else None


def read_dumps(folder: Path, pids: set[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            out[pid] = json.loads((folder / f"{pid}.json").read_text())
    return out


def scrape(nodes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Sums of :data:`SCRAPED` over every node's /metrics."""
    sums: dict[str, float] = {}
    for rec in nodes.values():
        url = f"http://{rec.get('host') or '127.0.0.1'}:{rec['health_port']}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            sums["scrape_errors"] = sums.get("scrape_errors", 0) + 1
            continue
        for line in text.splitlines():
            if line.startswith(SCRAPED):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    sums[name] = sums.get(name, 0) + float(value)
    return sums


def views_ok(args: argparse.Namespace, env: dict[str, str]) -> str:
    status = run_devnet(args, env, "status", "--json", "--dir", str(args.dir))
    try:
        body = json.loads(status.stdout)
    except ValueError:
        return status.stdout[-300:]
    return f"converged={body.get('converged')} agreeing={len(body.get('agreeing', []))}"


def measure(args: argparse.Namespace, capture: Capture) -> dict[str, Any]:
    run_dir = Path(args.dir)
    dump_dir = run_dir / "cost-dumps"
    env = node_env(args, dump_dir)
    for stale in dump_dir.glob("*.json"):
        stale.unlink()
    up_cmd = ["up", "-n", str(args.nodes), "--profile", "production", "--detach"]
    up_cmd += ["--dir", str(run_dir), "--timeout", str(args.timeout)]
    if args.node_args:
        up_cmd += ["--", *args.node_args]
    began = time.monotonic()
    up = run_devnet(args, env, *up_cmd)
    converged = [line for line in up.stdout.splitlines() if "converged" in line]
    result: dict[str, Any] = {
        "label": args.label,
        "nodes": args.nodes,
        "up_rc": up.returncode,
        "overrides": {
            k: getattr(args, k)
            for k in ("p2p", "cluster", "health", "tuning", "gossipsub", "kad_refresh")
        }
        | {"node_args": args.node_args, "env": args.env},
        "instrumented": args.instrument,
        "converged": up.returncode == 0,
        "up_seconds": round(time.monotonic() - began, 1),
        "converged_line": converged[-1] if converged else up.stderr[-400:],
    }
    try:
        if up.returncode != 0:
            result["up_error"] = (up.stdout + up.stderr)[-1500:]
            return result
        nodes = json.loads((run_dir / "state.json").read_text())["nodes"]
        procs = {int(rec["pid"]): psutil.Process(int(rec["pid"])) for rec in nodes.values()}
        ports = {int(rec["p2p_port"]) for rec in nodes.values()}
        time.sleep(args.settle)
        cpu_before = {pid: proc.cpu_times() for pid, proc in procs.items()}
        dumps_before = read_dumps(dump_dir, set(procs)) if args.instrument else {}
        capture.ports = ports
        with capture:
            t0 = time.monotonic()
            time.sleep(args.window)
            elapsed = time.monotonic() - t0
        dumps_after = read_dumps(dump_dir, set(procs)) if args.instrument else {}
        cpu = [
            (sum(proc.cpu_times()[:2]) - sum(cpu_before[pid][:2])) / elapsed * 100
            for pid, proc in procs.items()
        ]
        rss = [proc.memory_info().rss / 2**20 for proc in procs.values()]
        per_node = elapsed * len(procs)
        result.update(
            window=round(elapsed, 1),
            rss_mib=statistics.median(rss),
            rss_mib_max=max(rss),
            cpu_percent=statistics.median(cpu),
            cpu_percent_max=max(cpu),
            cpu_percent_mean=statistics.mean(cpu),
            bytes_per_s=capture.bytes / per_node,
            packets_per_s=capture.packets / per_node,
            ack_packets_per_s=capture.ack_packets / per_node,
            ack_bytes_per_s=capture.ack_bytes / per_node,
        )
        if args.instrument:
            used, rates = breakdown(dumps_before, dumps_after)
            result["breakdown_nodes"] = used
            result["breakdown"] = rates
        result["views_ok"] = views_ok(args, env)
        result["metrics"] = scrape(nodes)
    finally:
        if not args.keep:
            result["down_rc"] = run_devnet(args, env, "down", "--dir", str(run_dir)).returncode
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devnet.cost_breakdown",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-n", "--nodes", type=int, default=10, help="devnet size (default 10)")
    p.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="seconds measured (default 60). Use 120 or more for a steady-state figure:"
        " the 2026-12 measurements saw the idle cost still growing for the first ~2 minutes",
    )
    p.add_argument(
        "--settle", type=float, default=10.0, help="seconds between convergence and the window"
    )
    p.add_argument("--timeout", type=float, default=180.0, help="convergence timeout of `up`")
    p.add_argument("--dir", default="/tmp/cost-devnet", help="devnet folder (default %(default)s)")
    p.add_argument("--label", default="run", help="name of the run in the output")
    p.add_argument("--out", help="also write the result as JSON to this file")
    p.add_argument(
        "--instrument", action="store_true", help="per-protocol TCP-write counters in the nodes"
    )
    p.add_argument("--keep", action="store_true", help="leave the devnet running afterwards")
    for name, target in (
        ("p2p", "adapters.p2p_config.P2PConfig"),
        ("cluster", "mesh.cluster_config.ClusterConfig"),
        ("health", "probes.health_config.HealthConfig (production preset)"),
        ("tuning", "adapters.gossip_tuning.GossipTuning"),
        ("gossipsub", "keyword arguments of py-libp2p's GossipSub"),
    ):
        p.add_argument(f"--{name}", metavar="JSON", help=f"field overrides of {target}")
    p.add_argument(
        "--kad-refresh", metavar="SECONDS", help="Kademlia routing-table refresh interval"
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for the nodes (repeatable)",
    )
    p.add_argument("node_args", nargs="*", help="after --: flags passed to every node")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problem = check_overrides(args)
    if problem:
        print(f"cost_breakdown: {problem}", file=sys.stderr)
        return 2
    capture = Capture(set())
    if not capture.available:
        print(
            "cost_breakdown: cannot capture on lo; the AF_PACKET capture needs root"
            " or CAP_NET_RAW (e.g. sudo -E env PYTHONPATH=$PYTHONPATH python -m"
            " devnet.cost_breakdown ...)",
            file=sys.stderr,
        )
        return 2
    # SIGTERM as KeyboardInterrupt, so that `measure` still stops the devnet.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = measure(args, capture)
    finally:
        signal.signal(signal.SIGTERM, previous)
        capture.close()
    print(render(result), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if result["converged"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
