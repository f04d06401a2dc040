"""The bench's cost part: memory, idle CPU and traffic per node, and ``GET /health`` under
load, with its section of the report.

At each size: memory (RSS) and idle CPU per node and cluster traffic per node over an idle
window with no polling (bytes on the nodes' libp2p / memberlist ports, counted on the
loopback interface with a raw socket, :mod:`devnet.bench_traffic`); then, on our side only,
/health latency at a steady HEALTH_RATE requests a second and throughput under wrk while the
probes run.
"""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from devnet.bench_detection import CONVERGE_TIMEOUT, all_alive, poll_until
from devnet.bench_target import Target
from devnet.bench_text import fmt
from devnet.bench_traffic import LoopbackCounter

__all__ = ["HEALTH_RATE", "resources", "resources_section", "steady_latency", "wrk_throughput"]

HEALTH_RATE = 50.0  # requests a second for the steady-load latency figure


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
        f" traffic {fmt(out['bytes_per_second'], 'B/s', 0)}"
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


# ---------------------------------------------------------------------------- report


def resources_section(res: dict[str, Any]) -> list[str]:
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
            line += f" {fmt(a, unit, digits)} | {fmt(b, unit, digits)} | {ratio} |"
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
                f" {fmt(steady['p50_ms'], 'ms')} | {fmt(steady['p99_ms'], 'ms')} | - |"
            )
            if wrk.get("tool"):
                lines.append(
                    f"| {n} nodes | wrk, {wrk['connections']} connections, closed loop |"
                    f" {fmt(wrk['p50_ms'], 'ms')} | {fmt(wrk['p99_ms'], 'ms')} |"
                    f" {fmt(wrk['requests_per_second'], 'req/s', 0)} |"
                )
            elif wrk:
                lines.append(f"| {n} nodes | wrk | - | - | {wrk.get('note', 'n/a')} |")
        lines.append("")
    return lines
