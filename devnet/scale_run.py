"""The real devnet at the largest size this machine holds, beside the simulator (issue 15):
``python -m devnet.scale_run`` (root, iproute2 and nftables; 8-10 minutes at 30 nodes).

N nodes (30) of the production profile, each in its own network namespace, every link
losing a share of its packets at random (1 %, nftables on input, as ``devnet/netloss.py``
explains) from before the second node starts. Then, on the one cluster:

1. **Join.** The nodes start one after another, each bootstrapping to the one before. A
   node starts once every view of the nodes before it agrees: started back to back, 30
   nodes saturate both cores, start-up stretches to 25 s a node, nodes fail their own
   critical probes and stop (measured 2026-12-03). Reported: last node ready → every view
   lists every node alive.
2. **Idle cost**, a window with no polls: what each node sent on its ``eth0`` (its own
   namespace's interface, ``/proc/<pid>/net/dev``; the 14-byte Ethernet header taken off,
   so IPv4 bytes as the loopback counters of the bench count them), packets and CPU.
3. **Crash.** SIGKILL node 2. Per observer, the time until it listed node 2 dead, read from
   the transition histories of its views (polled every :data:`POLL` s, so a transition is
   timed by the node itself, not by the poll). Then node 2 starts again; agreement.
4. **Freeze.** SIGSTOP node 3, timed the same way; SIGCONT, agreement.
5. **False deaths**: a live member's transition into dead in any view, over the whole run,
   from the polls and from every node's log, which records each transition; each
   observer's first death of a victim after its signal is its detection, not false.

The simulator (``devnet.simulator``) runs the same size, loss and scenarios beside it: the
join with the real run's mean interval between starts, the crash and freeze on a cluster
that has run a while (the real victims were killed after the idle window), and the idle
window's traffic. It leaves out the active probes (the PubSub probe's topic and answers,
the DHT probe's records), identify and TCP's own segments, which the real figures include.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # ships no py.typed

from devnet.bench_loss_counts import ChorusPoller
from devnet.bench_target import ChorusTarget
from devnet.cluster import DevnetError, NetnsNet, NodeRecord
from devnet.netloss import loss_counters, set_loss
from devnet.scale_counts import (
    detection,
    false_deaths,
    logged_transitions,
    nearest_rank,
    sent_on_eth0,
)
from devnet.scale_report import render
from devnet.scale_sim import simulate

__all__ = ["POLL", "ScaleRun", "main"]

# Seconds between polls while waiting; a transition's time comes from its history. Whole
# /health/cluster bodies every 0.5 s took 11 % of a node's CPU at 30 nodes (py-spy,
# 2026-12-03), so the polls ask only for the members that are not alive (FILTER).
POLL = 1.0
FILTER = "?state=suspect,dead,left"
AGREE_TIMEOUT = 120.0  # per step of the paced start, and after a restart or a thaw
DETECT_TIMEOUT = 60.0
# A node's own start (the python process until it serves): 30 s (the devnet's default) was
# too short with 25 nodes sharing two cores, measured 2026-12-03.
START_TIMEOUT = 120.0
VICTIMS = {"crash": (2, signal.SIGKILL), "freeze": (3, signal.SIGSTOP)}


class ScaleRun:
    """One cluster, the steps of the module's docstring, and what they measured."""

    def __init__(
        self, root: Path, n: int, loss: int, node_args: Sequence[str], say: Callable[[str], None]
    ) -> None:
        self.n, self.loss, self.node_args, self.say = n, loss, list(node_args), say
        self.target = ChorusTarget(root, admission=True, profile="production", netns=True)
        self.net = NetnsNet(self.target.devnet.run.root)
        # Only members that are not alive come back (their histories with them), and every
        # view's counts: a whole body from 30 nodes every poll tipped the machine over.
        self.poller = ChorusPoller(self.target, FILTER)
        self.out: dict[str, Any] = {"n": n, "loss_percent": loss, "node_args": self.node_args}
        self.victims: dict[str, float] = {}  # peer -> wall time of its signal

    def wait_agreement(self, live: set[int], timeout: float = AGREE_TIMEOUT) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            began = time.monotonic()
            views = self.poller.views()
            if all(
                i in views
                and not views[i]
                and self.poller.counts.get(i, {}).get("alive") == len(live)
                for i in live
            ):
                return began
            time.sleep(max(0.0, POLL - (time.monotonic() - began)))
        return None

    def start(self) -> None:
        starts: list[float] = []

        def started(rec: NodeRecord, took: float) -> None:
            starts.append(time.monotonic())
            self.out.setdefault("start_seconds", []).append(took)
            if rec.index == 1 and self.loss:
                set_loss(self.net, self.n, self.loss)
            if rec.index < self.n:  # the last node's agreement is the measurement
                if self.wait_agreement(set(range(1, rec.index + 1))) is None:
                    raise DevnetError(f"the first {rec.index} nodes did not agree")
            self.say(f"node{rec.index} up in {took:.1f}s")

        self.target.devnet.up(
            self.n,
            node_args=self.node_args,
            admission=True,
            profile="production",
            netns=True,
            started=started,
            start_timeout=START_TIMEOUT,
            owned=False,
        )
        agreed = self.wait_agreement(set(range(1, self.n + 1)))
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        self.out["start_interval"] = statistics.mean(gaps) if gaps else 0.0
        self.out["converge"] = None if agreed is None else agreed - starts[-1]
        self.say(f"converged: {self.out['converge']}")
        if agreed is None:
            raise DevnetError(f"{self.n} nodes did not agree within {AGREE_TIMEOUT:.0f} s")

    def idle(self, seconds: float) -> None:
        procs = self.target.processes()
        before = {i: (sent_on_eth0(p.pid), sum(p.cpu_times()[:2])) for i, p in procs.items()}
        began = time.monotonic()
        time.sleep(seconds)
        took = time.monotonic() - began
        rates: list[tuple[float, float, float]] = []
        for i, p in procs.items():
            (b0, k0), c0 = before[i]
            b1, k1 = sent_on_eth0(p.pid)
            rates.append(
                ((b1 - b0) / took, (k1 - k0) / took, 100 * (sum(p.cpu_times()[:2]) - c0) / took)
            )
        self.out["idle"] = {
            "seconds": took,
            "bytes_per_s": statistics.median(r[0] for r in rates),
            "packets_per_s": statistics.median(r[1] for r in rates),
            "cpu_percent": statistics.median(r[2] for r in rates),
            "rss_mib": statistics.median(p.memory_info().rss / 2**20 for p in procs.values()),
        }
        self.say(f"idle: {self.out['idle']}")

    def detect(self, scenario: str) -> None:
        index, signum = VICTIMS[scenario]
        victim = self.target.devnet.state().node(index).peer_id or ""
        live = set(range(1, self.n + 1))
        observers = live - {index}
        sent = time.time()
        self.target.signal(index, signum)
        deadline = time.monotonic() + DETECT_TIMEOUT
        times: dict[int, float] = {}
        while time.monotonic() < deadline and len(times) < len(observers):
            began = time.monotonic()
            self.poller.views()
            times = detection(self.poller.entries, victim, observers, sent)
            time.sleep(max(0.0, POLL - (time.monotonic() - began)))
        values = sorted(times.values())
        self.out[scenario] = {
            "seen": len(values),
            "observers": len(observers),
            "times": values,
            "p50": nearest_rank(values, 0.5) if values else None,
            "p99": nearest_rank(values, 0.99) if len(values) == len(observers) else None,
        }
        cell = self.out[scenario]
        self.say(f"{scenario}: {len(values)}/{len(observers)} p50 {cell['p50']} p99 {cell['p99']}")
        if signum == signal.SIGKILL:
            self.target.restart(index)
        else:
            self.target.signal(index, signal.SIGCONT)
        back = time.monotonic()
        self.victims[victim] = sent
        agreed = self.wait_agreement(live)
        cell["back"] = None if agreed is None else agreed - back
        cell["agree_timeout"] = AGREE_TIMEOUT
        self.say(f"{scenario}: every view agrees again after {cell['back']}")

    def finish(self) -> None:
        entries = set(self.poller.entries)
        for index, rec in self.target.devnet.state().nodes.items():
            with contextlib.suppress(OSError), open(rec.log, encoding="utf-8") as log:
                entries |= logged_transitions(index, log)
        self.out["false_deaths"] = false_deaths(entries, self.victims)
        seen, dropped = loss_counters(self.net, self.n)
        self.out["measured_loss"] = dropped / seen if seen else None

    def close(self) -> None:
        self.poller.close()
        with contextlib.suppress(DevnetError, OSError):
            self.target.close()


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {raw!r}")
    return value


def _seeds(raw: str) -> list[int]:
    try:
        seeds = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected seeds like 1,2,3, got {raw!r}")
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.scale_run",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--nodes", type=int, default=30, help="nodes (default: 30)")
    parser.add_argument("--loss", type=int, default=1, help="per cent lost on each link (1)")
    parser.add_argument("--idle-seconds", type=_positive, default=60.0, help="idle window (60)")
    parser.add_argument(
        "--seeds", type=_seeds, default="1,2,3,4,5", help="the simulator's seeds (1,2,3,4,5)"
    )
    parser.add_argument("--dir", type=Path, default=Path(".devnet/scale"), help="run folder")
    parser.add_argument("--out", type=Path, help="results JSON (default: <dir>/scale.json)")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print the table of a results file"
    )
    parser.add_argument("node_args", nargs="*", help="after --: flags for every node")
    args = parser.parse_args(argv)
    if args.render is not None:
        print(render(json.loads(args.render.read_text())))
        return 0
    if args.nodes < 3 or not 0 <= args.loss <= 100:
        parser.error("need at least 3 nodes and a loss of 0-100 %")
    seeds: list[int] = args.seeds

    def say(text: str) -> None:
        print(f"scale: {text}", file=sys.stderr, flush=True)

    run = ScaleRun(args.dir, args.nodes, args.loss, args.node_args, say)
    result: dict[str, Any] = {
        "n": args.nodes,
        "loss_percent": args.loss,
        "node_args": args.node_args,
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        run.start()
        run.idle(args.idle_seconds)
        run.detect("crash")
        run.detect("freeze")
    except (DevnetError, OSError, psutil.Error) as exc:
        # What was measured so far is kept, counted and printed with the reason.
        run.out["error"] = str(exc) or type(exc).__name__
        say(f"stopped: {run.out['error']}")
    finally:
        try:
            run.finish()
        except (DevnetError, OSError, ValueError) as exc:
            say(f"could not count false deaths or loss: {exc}")
        run.close()
    result["real"] = run.out
    say("the simulator, same size and loss")
    result["sim"] = simulate(args.nodes, args.loss / 100, seeds, run.out.get("start_interval", 1.0))
    out = args.out or args.dir / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(render(result))
    return 1 if "error" in run.out else 0


if __name__ == "__main__":
    raise SystemExit(main())
