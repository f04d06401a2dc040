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
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psutil

from devnet.cluster import (
    DEFAULT_PROBE_INTERVAL,
    PROBE_SECONDS_PER_NODE,
    REPO_ROOT,
    Devnet,
    DevnetError,
    Proc,
    get_json,
    pdeathsig_preexec,
    proc_state,
)
from devnet.serf import SerfCluster, serf_version

__all__ = ["main", "render_markdown"]

DEFAULT_DIR = Path(".devnet/bench")
DETECT_TIMEOUT = 60.0
CONVERGE_TIMEOUT = 60.0
# The devnet's probe interval in the benchmark: None is what `make devnet` runs at each
# size (devnet.cluster.default_probe_interval).
PROBE_INTERVAL: float | None = None
HEALTH_RATE = 50.0  # requests a second for the steady-load latency figure


# The clock and sleep of the polling loops; tests replace them with a fake clock.
_clock = time.monotonic
_sleep = time.sleep


def poll_interval(n: int) -> float:
    return 0.1 if n <= 5 else 0.15 if n <= 10 else 0.25


class Target(Protocol):
    name: str

    def start(self, n: int) -> float: ...
    def views(self) -> dict[int, dict[int, str]]: ...
    def signal(self, index: int, signum: int) -> None: ...
    def restart(self, index: int) -> float: ...
    def processes(self) -> dict[int, psutil.Process]: ...
    def gossip_ports(self) -> set[int]: ...
    def close(self) -> None: ...


def _probe_text(interval: float | None) -> str:
    if interval is None:
        return (
            f"probes every {DEFAULT_PROBE_INTERVAL:g} s, {PROBE_SECONDS_PER_NODE:g} s per node"
            f" above {DEFAULT_PROBE_INTERVAL / PROBE_SECONDS_PER_NODE:g} nodes"
        )
    return f"--probe-interval {interval:g}"


def _profile_text(meta: Mapping[str, Any]) -> str:
    # Runs before profiles were a choice were all devnet runs.
    profile = meta.get("profile", "devnet")
    if profile == "production":
        return "production profile, as operators run it: its probe timing, a 2 s drain"
    return f"devnet profile, {_probe_text(meta.get('probe_interval'))}"


def _admission_text(admission: bool) -> str:
    if admission:
        return "admission policy on: the run's cluster authority certifies every node"
    return "no admission policy (`--open`)"


class ChorusTarget:
    """Our devnet, through the same Devnet API as ``python -m devnet up``."""

    name = "chorus"

    def __init__(
        self,
        root: Path,
        probe_interval: float | None = PROBE_INTERVAL,
        *,
        admission: bool = True,
        profile: str = "production",
        netns: bool = False,
    ) -> None:
        self.devnet = Devnet(root, die_with_parent=True)
        self.probe_interval = probe_interval
        self.admission = admission
        self.profile = profile
        self.netns = netns  # each node in its own network namespace (the loss soak)

    def start(self, n: int) -> float:
        self.devnet.up(
            n,
            probe_interval=self.probe_interval,
            admission=self.admission,
            profile=self.profile,
            netns=self.netns,
        )
        return time.monotonic()

    def views(self) -> dict[int, dict[int, str]]:
        snap = self.devnet.snapshot()
        names = self.devnet.state().by_peer()
        return {
            i: {names[p.peer_id]: p.state for p in view.peers if p.peer_id in names}
            for i, view in snap.views.items()
        }

    def signal(self, index: int, signum: int) -> None:
        rec = self.devnet.state().node(index)
        os.kill(rec.pid or 0, signum)

    def restart(self, index: int) -> float:
        self.devnet.restart(index)
        return time.monotonic()

    def processes(self) -> dict[int, psutil.Process]:
        found = {}
        for i, rec in self.devnet.state().nodes.items():
            if rec.pid and proc_state(rec) is Proc.RUNNING:
                found[i] = psutil.Process(rec.pid)
        return found

    def gossip_ports(self) -> set[int]:
        return {rec.p2p_port for rec in self.devnet.state().nodes.values()}

    def health_url(self, index: int = 1) -> str:
        return self.devnet.state().node(index).http_url + "/health"

    def close(self) -> None:
        try:
            self.devnet.down(timeout=20.0)
        finally:
            self.devnet.close()


# ------------------------------------------------------------------------------ polling


def poll_until(
    target: Target,
    done: Callable[[dict[int, dict[int, str]]], bool],
    *,
    timeout: float,
    interval: float,
) -> float | None:
    """Monotonic time of the first poll whose views satisfy ``done``; None on timeout."""
    deadline = _clock() + timeout
    while _clock() < deadline:
        began = _clock()
        views = target.views()
        if done(views):
            return began
        _sleep(max(0.0, interval - (_clock() - began)))
    return None


def all_alive(live: set[int]) -> Callable[[dict[int, dict[int, str]]], bool]:
    def check(views: dict[int, dict[int, str]]) -> bool:
        return all(
            i in views and {m for m, s in views[i].items() if s == "alive"} == live for i in live
        )

    return check


def all_see(
    observers: set[int], victim: int, states: set[str]
) -> Callable[[dict[int, dict[int, str]]], bool]:
    def check(views: dict[int, dict[int, str]]) -> bool:
        return all(views.get(o, {}).get(victim) in states for o in observers)

    return check


def one_run(target: Target, n: int, say: Callable[[str], None]) -> dict[str, float | None]:
    """Convergence, then SIGKILL, SIGSTOP and SIGTERM detection, on one fresh cluster."""
    every = poll_interval(n)
    live = set(range(1, n + 1))
    out: dict[str, float | None] = {}
    ready = target.start(n)
    agreed = poll_until(target, all_alive(live), timeout=CONVERGE_TIMEOUT, interval=every)
    out["converge"] = None if agreed is None else agreed - ready
    if agreed is None:
        raise DevnetError(f"{target.name} at {n} nodes did not converge")
    say(f"{target.name} n={n}: converged in {out['converge']:.2f}s")

    def detect(key: str, victim: int, signum: int, states: set[str]) -> None:
        others = live - {victim}
        sent = _clock()
        target.signal(victim, signum)
        seen = poll_until(
            target, all_see(others, victim, states), timeout=DETECT_TIMEOUT, interval=every
        )
        out[key] = None if seen is None else seen - sent
        say(f"{target.name} n={n}: {key} {_fmt(out[key])}")

    def reconverge(victim: int, thaw: bool) -> None:
        if thaw:
            target.signal(victim, signal.SIGCONT)
        else:
            target.restart(victim)
        if poll_until(target, all_alive(live), timeout=CONVERGE_TIMEOUT, interval=every) is None:
            raise DevnetError(f"{target.name} at {n} nodes did not agree again after {victim}")

    detect("kill", 2, signal.SIGKILL, {"dead"})
    reconverge(2, thaw=False)
    detect("freeze", 3, signal.SIGSTOP, {"dead"})
    reconverge(3, thaw=True)
    detect("leave", 4, signal.SIGTERM, {"left"})
    return out


# --------------------------------------------------------------------- traffic counting


class LoopbackCounter:
    """Counts IPv4 bytes (IP header included) sent on ``lo`` to or from any of ``ports``.

    A raw AF_PACKET socket sees every loopback packet twice, once outgoing and once
    incoming; only the outgoing copy is counted. Needs CAP_NET_RAW (root here); without it
    ``available`` is False and the figure is reported as n/a.
    """

    PACKET_OUTGOING = 4

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.bytes = 0
        self.packets = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._sock: socket.socket | None = socket.socket(
                # ETH_P_ALL: taps bound to one protocol never see outgoing copies.
                socket.AF_PACKET,
                socket.SOCK_RAW,
                socket.ntohs(0x0003),
            )
            self._sock.bind(("lo", 0))
            self._sock.settimeout(0.2)
        except (OSError, AttributeError):
            self._sock = None

    @property
    def available(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> LoopbackCounter:
        if self._sock is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != self.PACKET_OUTGOING or len(data) < 14 + 24:
                continue
            if data[12:14] != b"\x08\x00":  # IPv4 only: the nodes listen on 127.0.0.1
                continue
            self.count(data[14:])

    def count(self, ip: bytes) -> None:
        """Count one outgoing IPv4 packet if it is TCP or UDP to or from our ports."""
        if ip[9] not in (6, 17):  # TCP, UDP
            return
        header = (ip[0] & 0x0F) * 4
        source, dest = struct.unpack("!HH", ip[header : header + 4])
        if source in self.ports or dest in self.ports:
            self.bytes += struct.unpack("!H", ip[2:4])[0]
            self.packets += 1


# -------------------------------------------------------------------------- resources


def resources(target: Target, n: int, idle: float, say: Callable[[str], None]) -> dict[str, Any]:
    """RSS, idle CPU and cluster traffic per node over ``idle`` seconds with no polling."""
    target.start(n)
    # Measured whether or not the views agree: a cluster that cannot converge still costs.
    converged = (
        poll_until(target, all_alive(set(range(1, n + 1))), timeout=CONVERGE_TIMEOUT, interval=0.5)
        is not None
    )
    time.sleep(3.0)  # let start-up work (first probes, DHT bootstrap) finish
    processes = target.processes()
    before = {i: p.cpu_times() for i, p in processes.items()}
    with LoopbackCounter(target.gossip_ports()) as counter:
        began = time.monotonic()
        time.sleep(idle)
        elapsed = time.monotonic() - began
    cpu = [
        (sum(processes[i].cpu_times()[:2]) - sum(before[i][:2])) / elapsed * 100 for i in processes
    ]
    rss = [p.memory_info().rss / 2**20 for p in processes.values()]
    out: dict[str, Any] = {
        "n": n,
        "converged": converged,
        "idle_seconds": round(elapsed, 1),
        "rss_mib": statistics.median(rss),
        "rss_mib_max": max(rss),
        "cpu_percent": statistics.median(cpu),
        "cpu_percent_max": max(cpu),
        "bytes_per_second": counter.bytes / elapsed / n if counter.available else None,
        "packets_per_second": counter.packets / elapsed / n if counter.available else None,
    }
    say(
        f"{target.name} n={n}: rss {out['rss_mib']:.1f} MiB, cpu {out['cpu_percent']:.2f}%,"
        f" traffic {_fmt(out['bytes_per_second'], 'B/s', 0)}"
    )
    return out


def steady_latency(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """GET ``url`` at a fixed rate over one keep-alive connection; latency percentiles."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    latencies: list[float] = []
    errors = 0
    start = time.monotonic()
    count = int(rate * seconds)
    try:
        for k in range(count):
            # Open loop: each request goes at its slot, however long the last one took.
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
            sent = time.perf_counter()
            try:
                conn.request("GET", path)
                conn.getresponse().read()
                latencies.append(time.perf_counter() - sent)
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
    finally:
        conn.close()
    return {
        "rate": rate,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": _percentile(latencies, 99) * 1000 if latencies else None,
    }


def wrk_throughput(url: str, seconds: float, connections: int = 8) -> dict[str, Any]:
    """Requests a second under wrk (closed loop), with its latency percentiles."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"tool": None, "note": "wrk not installed (apt-get install -y wrk)"}
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    text = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "tool": "wrk",
        "connections": connections,
        "requests_per_second": float(rps.group(1)) if rps else None,
        "p50_ms": _duration_ms(percentiles.get("50")),
        "p99_ms": _duration_ms(percentiles.get("99")),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _duration_ms(text: str | None) -> float | None:
    if not text:
        return None
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not found:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found.group(2)]
    return float(found.group(1)) * scale


def _percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


# ------------------------------------------------------------------------------- soak


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
    offsets = _log_offsets(serf_logs)
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
                if step.get("to") == "dead" and _wall(step.get("at")) >= since_wall:
                    total += 1
    return total


def _wall(stamp: object) -> float:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _log_offsets(folder: Path | None) -> dict[Path, int]:
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


# ----------------------------------------------------------------------------- report


def _fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


METRICS = (
    ("converge", "last node ready → full agreement"),
    ("kill", "SIGKILL → every other node sees it dead"),
    ("freeze", "SIGSTOP → every other node sees it dead"),
    ("leave", "SIGTERM → every other node sees it left"),
)


def summarise(results: dict[str, Any]) -> dict[str, dict[int, dict[str, dict[str, Any]]]]:
    """metric -> n -> target -> {median, min, max, runs, failed}."""
    table: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for metric, _ in METRICS:
        for run in results.get("runs", []):
            cell = table.setdefault(metric, {}).setdefault(run["n"], {})
            entry = cell.setdefault(run["target"], {"values": [], "failed": 0})
            value = run.get(metric)
            if value is None:
                entry["failed"] += 1
            else:
                entry["values"].append(value)
    for by_n in table.values():
        for cell in by_n.values():
            for entry in cell.values():
                values = entry["values"]
                entry["median"] = statistics.median(values) if values else None
                entry["min"] = min(values) if values else None
                entry["max"] = max(values) if values else None
    return table


def render_markdown(results: dict[str, Any], plot_name: str | None) -> str:
    # Imported here: bench_goals builds on this module's summarise.
    from devnet.bench_goals import goals_section

    meta = results["meta"]
    out = [
        "# Benchmarks: chorus-health devnet against Serf",
        "",
        f"Generated by `{meta['command']}` on {meta['date']}"
        f" (took {meta.get('duration_min', 0):.0f} min). Re-run with `make bench`"
        " (`python -m devnet.bench`; `--quick` for a smoke run, `--help` for the knobs).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']:.0f} GiB,"
        f" {meta['kernel']}; Python {meta['python']}. chorus-health {meta['commit']}"
        f" ({_profile_text(meta)}, {_admission_text(meta.get('admission', False))});"
        f" Serf {str(meta['serf']).removeprefix('Serf ')}"
        " (default LAN profile, leave_on_terminate). Both sides ran on the same machine in"
        " the same run, one cluster at a time, all on 127.0.0.1. Other work on the machine"
        " was not stopped: figures are medians to damp it.",
        "",
        *_carried_text(meta),
        *goals_section(results),
        "## Convergence and failure detection",
        "",
        f"Median of {meta['runs']} runs per size (min-max in brackets); ratio = ours / Serf,"
        " below 1 means we are faster. A run that timed out counts as failed and is listed.",
        "",
    ]
    table = summarise(results)
    for metric, title in METRICS:
        out += [f"### {title}", "", "| nodes | ours | Serf | ratio |", "|---:|---:|---:|---:|"]
        for n, cell in sorted(table.get(metric, {}).items()):
            ours, serf = cell.get("chorus", {}), cell.get("Serf", {})
            ratio = (
                f"{ours['median'] / serf['median']:.2f}x"
                if ours.get("median") and serf.get("median")
                else "n/a"
            )
            out.append(f"| {n} | {_cell(ours)} | {_cell(serf)} | {ratio} |")
        out.append("")
    if plot_name:
        out += [f"![convergence and detection times against cluster size]({plot_name})", ""]
    out += [
        "Polls: every node is asked in parallel every 0.1 s up to 5 nodes, 0.15 s up to 10,"
        " 0.25 s beyond, on both sides, so each figure is good to about one interval."
        " Our nodes answer `GET /health/cluster`; Serf agents answer the `members` RPC.",
        "",
    ]
    res = results.get("resources", {})
    if res:
        out += _resources_section(res)
    soak_result = results.get("soak")
    if soak_result:
        out += _soak_section(soak_result)
    if results.get("loss"):
        # Imported here: bench_loss builds on this module's targets and polling.
        from devnet.bench_loss import loss_section

        out += loss_section(results["loss"])
    if results.get("partition"):
        from devnet.bench_partition import partition_section

        out += partition_section(results["partition"])
    out += [
        "## Method",
        "",
        "* **ready**: the node answers its API (our HTTP endpoints, Serf's RPC). Nodes start"
        " one after another, node i joining node i-1, on both sides.",
        "* **full agreement**: every node lists all n members alive (membership only; Serf"
        " has no admin election).",
        "* **detection**: one fresh cluster per run: SIGKILL node 2, restart it, wait for"
        " agreement; SIGSTOP node 3, SIGCONT it, wait for agreement; SIGTERM node 4. Every"
        " measurement happens with n live members.",
        "* **memory / CPU / traffic**: after convergence and 3 s of settling, over an idle"
        " window in which nothing polls the nodes. Traffic is every IPv4 byte (headers"
        " included) sent on 127.0.0.1 to or from a node's libp2p port (ours: digests,"
        " probes, pulls, identify, pings) or memberlist port (Serf: probes, gossip,"
        " push-pull), divided by nodes and seconds.",
        "* **/health**: one keep-alive connection at a steady rate, open loop, while the"
        " node's own probes run; throughput from wrk (closed loop) on the same node.",
        "",
    ]
    return "\n".join(out)


def _cell(entry: dict[str, Any]) -> str:
    if not entry:
        return "-"
    failed = f", {entry['failed']} failed" if entry.get("failed") else ""
    if entry.get("median") is None:
        return f"timed out{failed}"
    return f"{entry['median']:.2f} s ({entry['min']:.2f}-{entry['max']:.2f}{failed})"


def _resources_section(res: dict[str, Any]) -> list[str]:
    """One column pair per size: the cost per node grows with the cluster."""
    by_size = {int(n): cell for n, cell in res.get("sizes", {}).items()}
    if not by_size:
        return []
    window = next(
        (c[t]["idle_seconds"] for c in by_size.values() for t in c if "idle_seconds" in c[t]),
        0,
    )
    head = "| per node (median) |"
    rule = "|---|"
    for n in sorted(by_size):
        head += f" ours, {n} nodes | Serf, {n} nodes | ratio |"
        rule += "---:|---:|---:|"

    def row(label: str, key: str, unit: str, digits: int) -> str:
        line = f"| {label} |"
        for n in sorted(by_size):
            a = by_size[n].get("chorus", {}).get(key)
            b = by_size[n].get("Serf", {}).get(key)
            ratio = f"{a / b:.1f}x" if a is not None and b else "n/a"
            line += f" {_fmt(a, unit, digits)} | {_fmt(b, unit, digits)} | {ratio} |"
        return line

    lines = [
        f"## Cost per node ({window} s idle window after convergence)",
        "",
        head,
        rule,
        row("memory (RSS)", "rss_mib", "MiB", 1),
        row("idle CPU (% of one core)", "cpu_percent", "%", 2),
        row("cluster traffic sent", "bytes_per_second", "B/s", 0),
        row("packets sent", "packets_per_second", "/s", 1),
        "",
    ]
    unconverged = [
        f"ours at {n} nodes"
        for n, c in sorted(by_size.items())
        if not c.get("chorus", {}).get("converged", True)
    ] + [
        f"Serf at {n} nodes"
        for n, c in sorted(by_size.items())
        if not c.get("Serf", {}).get("converged", True)
    ]
    if unconverged:
        lines += [
            f"Not converged when the window began: {', '.join(unconverged)} (measured anyway).",
            "",
        ]
    health = [(n, c) for n, c in sorted(by_size.items()) if "health_steady" in c]
    if health:
        lines += [
            "### `GET /health` under load, while probes run (ours only: Serf has no such endpoint)",
            "",
            "| cluster | load | p50 | p99 | throughput |",
            "|---|---|---:|---:|---:|",
        ]
        for n, cell in health:
            steady, wrk = cell["health_steady"], cell.get("health_wrk", {})
            lines.append(
                f"| {n} nodes | steady {steady['rate']:g} req/s on 1 connection"
                f" ({steady['requests']} requests, {steady['errors']} errors) |"
                f" {_fmt(steady['p50_ms'], 'ms')} | {_fmt(steady['p99_ms'], 'ms')} | - |"
            )
            if wrk.get("tool"):
                lines.append(
                    f"| {n} nodes | wrk, {wrk['connections']} connections, closed loop |"
                    f" {_fmt(wrk['p50_ms'], 'ms')} | {_fmt(wrk['p99_ms'], 'ms')} |"
                    f" {_fmt(wrk['requests_per_second'], 'req/s', 0)} |"
                )
            elif wrk:
                lines.append(f"| {n} nodes | wrk | - | - | {wrk.get('note', 'n/a')} |")
        lines.append("")
    return lines


def _soak_section(soak_result: dict[str, Any]) -> list[str]:
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


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=10
    ).stdout.strip()


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


# -------------------------------------------------------------------------------- main


def sizes(raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 5,10,20, got {raw!r}") from None
    if not values or any(v < 5 or v > 60 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be 5 to 60 nodes, got {raw!r}")
    return values


PARTS = ("runs", "resources", "soak", "loss", "partition")


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
        " nftables too. The full default run takes about 50 minutes, 10 of them the CPU soak,"
        " 11 the loss soak and a few the partition runs.",
    )
    parser.add_argument("--sizes", type=sizes, default=[5, 10, 20], help="default: 5,10,20")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default: 3)")
    parser.add_argument(
        "--resource-sizes",
        type=sizes,
        default=[5, 10, 20],
        help="cluster sizes for the cost figures (default: 5,10,20)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="idle window for CPU/traffic (30)"
    )
    parser.add_argument("--load-seconds", type=float, default=15.0, help="/health load (15)")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="0 skips it (10)")
    parser.add_argument("--soak-size", type=int, default=10, help="nodes in the soak (10)")
    parser.add_argument(
        "--loss-minutes",
        type=float,
        default=10.0,
        help="packet-loss soak: half at 5 %%, half at 20 %% loss; 0 skips it (10)",
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


def write_report(results: dict[str, Any], out: Path, plot_path: Path) -> None:
    plot_name: str | None = None
    try:
        from devnet.plot import plot

        plot(summarise(results), plot_path)
        plot_name = os.path.relpath(plot_path, out.parent)
    except ImportError:
        print("bench: matplotlib is missing, no plot (pip install -e '.[bench]')", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    text = carry_over(render_markdown(results, plot_name), old)
    out.write_text(text + "\n", encoding="utf-8")


# Sections of BENCHMARKS.md that other tools measure (devnet/cost_breakdown.py needs root
# and instrumented nodes; make bench does not re-run it): a new report keeps them, before
# its "## Method", instead of dropping what it cannot measure.
CARRIED = ("## Where an idle node's bytes",)


def carry_over(new: str, old: str) -> str:
    """``new`` with the CARRIED sections of ``old`` (each up to the next "## ") inserted
    before its "## Method" section, unless ``new`` has them already."""
    kept = []
    for prefix in CARRIED:
        start = old.find("\n" + prefix)
        if start < 0 or ("\n" + prefix) in new:
            continue
        end = old.find("\n## ", start + 1)
        kept.append(old[start + 1 : end if end >= 0 else len(old)].rstrip() + "\n\n")
    if not kept:
        return new
    at = new.find("\n## Method")
    at = len(new) if at < 0 else at + 1
    return new[:at] + "".join(kept) + new[at:]


def part_commits(earlier: dict[str, Any], parts: list[str], commit: str) -> dict[str, str]:
    """The commit each part of the results was measured at: the parts run now at
    ``commit``, the others at whatever the earlier results say."""
    before = earlier.get("part_commits") or dict.fromkeys(PARTS, earlier.get("commit", "unknown"))
    return {part: commit if part in parts else str(before.get(part, "unknown")) for part in PARTS}


def _carried_text(meta: dict[str, Any]) -> list[str]:
    carried = {
        part: commit
        for part, commit in (meta.get("part_commits") or {}).items()
        if commit != meta["commit"]
    }
    if not carried:
        return []
    listed = ", ".join(f"{part} at {commit}" for part, commit in sorted(carried.items()))
    return [
        f"**Not all of it is from this commit.** Parts kept from an earlier run (`--parts`"
        f" ran the others): {listed}.",
        "",
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    serf = serf_version()
    args.dir.mkdir(parents=True, exist_ok=True)
    results_path = args.dir / "results.json"
    earlier: dict[str, Any] = {}
    if set(args.parts) != set(PARTS) and results_path.exists():
        earlier = json.loads(results_path.read_text())
    results: dict[str, Any] = {
        "meta": machine_meta(args, serf),
        "runs": earlier.get("runs", []),
        "resources": earlier.get("resources", {}),
    }
    for part in ("soak", "loss", "partition"):
        if part in earlier:
            results[part] = earlier[part]
    spent_before = float(earlier.get("meta", {}).get("duration_min", 0.0))
    results["meta"]["part_commits"] = part_commits(
        earlier.get("meta", {}), args.parts, results["meta"]["commit"]
    )
    if earlier:
        results["meta"]["runs"] = earlier.get("meta", {}).get("runs", args.runs)
        results["meta"]["sizes"] = earlier.get("meta", {}).get("sizes", args.sizes)

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
        from devnet.bench_loss import loss_soak  # see render_markdown

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
        from devnet.bench_partition import partition_heal  # see render_markdown

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


if __name__ == "__main__":
    sys.exit(main())
