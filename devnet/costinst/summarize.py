"""Tables from the idle-cost measurement tool's results (not product code).

:func:`breakdown` turns two counter dumps per node (devnet/costinst/_cost_hooks.py) into
per-node rates, :func:`render` is what devnet/cost_breakdown.py prints after a run, and the
command line makes the Markdown tables of cost-report.md from saved JSON results:

    python -m devnet.costinst.summarize protocols RESULT.json       (needs an --instrument run)
    python -m devnet.costinst.summarize compare BASE.json RUN.json ...
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# IPv4 20 + TCP 20 + timestamps option 12 bytes: what one TCP segment adds on the wire.
IPTCP_OVERHEAD = 52

Result = dict[str, Any]
Group = dict[str, float]  # w: writes/s, b: wire B/s, fw/fb: of which framing

# (predicate on protocol and kind, group); the first match wins, so specific rows first.
GROUPS: tuple[tuple[Callable[[str, str], bool], str], ...] = (
    (
        lambda p, k: "meshsub" in p and k.startswith("data:CHORUS/health-scores"),
        "GossipSub data: health digests (CHORUS/health-scores/v1)",
    ),
    (
        lambda p, k: "meshsub" in p and k.startswith("data:CHORUS/health-test"),
        "GossipSub data: PubSub probe (CHORUS/health-test/v1)",
    ),
    (lambda p, k: "meshsub" in p and k.startswith("data:"), "GossipSub data: other/mixed"),
    (
        lambda p, k: "meshsub" in p and ("control:" in k or "subscriptions" in k or "empty" in k),
        "GossipSub control (GRAFT/PRUNE/IHAVE/IWANT, subscriptions)",
    ),
    (lambda p, k: "meshsub" in p, "GossipSub yamux framing (window updates, stream open/close)"),
    # adapters/pinger.py negotiates its ping streams itself (conn.new_stream and
    # MultiselectClient), so py-libp2p never tags them: untagged streams are our pings.
    (
        lambda p, k: "ping" in p or p == "?untagged",
        "liveness pings /ipfs/ping/1.0.0 (both sides, all frames)",
    ),
    (
        lambda p, k: "health-probe-ack" in p,
        "PubSub probe answers /chorus/health-probe-ack/1.0.0",
    ),
    (
        lambda p, k: "kad" in p,
        "Kademlia /ipfs/kad/1.0.0 (probe put/get, replication reads, refresh)",
    ),
    (lambda p, k: "identify" in p, "identify"),
    (lambda p, k: "health-view" in p, "view pulls /chorus/health-view/1.0.0"),
    (lambda p, k: p == "yamux", "yamux session (RTT ping, go-away)"),
    (lambda p, k: True, "other (handshakes, closed streams)"),
)
ACKS = "TCP pure ACKs (kernel, for all of the above)"


def group_of(key: str) -> str:
    proto, _, kind = key.partition(" | ")
    return next(name for match, name in GROUPS if match(proto.strip(), kind.strip()))


def is_framing(key: str) -> bool:
    """yamux and multistream-select frames, as opposed to the protocol's own payload."""
    return key.partition(" | ")[2].startswith(("yamux", "multistream"))


def breakdown(
    before: Mapping[int, Mapping[str, Any]], after: Mapping[int, Mapping[str, Any]]
) -> tuple[int, dict[str, dict[str, float]]]:
    """Mean per-node rates between two dumps of each node (pid -> dump): number of nodes
    used, and per counter key writes/s, TCP payload B/s and wire B/s (payload plus
    headers), largest payload first. A node without both dumps is left out."""
    sums: dict[str, list[float]] = {}
    used = 0
    for pid, end in after.items():
        start = before.get(pid)
        if not start or not end:
            continue
        elapsed = end["t"] - start["t"]
        if elapsed <= 0:
            continue
        used += 1
        for key, (writes, nbytes) in end["counts"].items():
            writes0, nbytes0 = start["counts"].get(key, (0, 0))
            entry = sums.setdefault(key, [0.0, 0.0])
            entry[0] += (writes - writes0) / elapsed
            entry[1] += (nbytes - nbytes0) / elapsed
    per = max(used, 1)
    rates = {
        key: {
            "writes_per_s": writes / per,
            "payload_bytes_per_s": nbytes / per,
            "wire_bytes_per_s": (nbytes + IPTCP_OVERHEAD * writes) / per,
        }
        for key, (writes, nbytes) in sorted(sums.items(), key=lambda item: -item[1][1])
        if abs(writes) > 1e-9 or abs(nbytes) > 1e-9
    }
    return used, rates


def grouped(result: Mapping[str, Any]) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for key, rates in result.get("breakdown", {}).items():
        group = out.setdefault(group_of(key), {"w": 0.0, "b": 0.0, "fw": 0.0, "fb": 0.0})
        group["w"] += rates["writes_per_s"]
        group["b"] += rates["wire_bytes_per_s"]
        if is_framing(key):
            group["fw"] += rates["writes_per_s"]
            group["fb"] += rates["wire_bytes_per_s"]
    out[ACKS] = {
        "w": result.get("ack_packets_per_s", 0.0),
        "b": result.get("ack_bytes_per_s", 0.0),
        "fw": 0.0,
        "fb": 0.0,
    }
    return out


def render(result: Mapping[str, Any]) -> str:
    """The plain-text summary cost_breakdown prints after a run."""
    get = result.get
    lines = [
        f"## {get('label')}",
        f"converged={get('converged')} window={get('window')}s"
        f" rss={get('rss_mib', 0):.1f}MiB (max {get('rss_mib_max', 0):.1f})"
        f" cpu={get('cpu_percent', 0):.2f}% (mean {get('cpu_percent_mean', 0):.2f},"
        f" max {get('cpu_percent_max', 0):.2f})"
        f" sent={get('bytes_per_s', 0):.0f}B/s packets={get('packets_per_s', 0):.1f}/s"
        f" (pure ACKs {get('ack_packets_per_s', 0):.1f}/s)",
    ]
    if get("up_error"):
        lines.append(f"devnet up failed:\n{get('up_error')}")
    rows = get("breakdown")
    if rows:
        acks = get("ack_bytes_per_s", 0.0)
        total = sum(v["wire_bytes_per_s"] for v in rows.values()) + acks or 1.0
        lines.append(
            f"{'protocol | kind':78} {'writes/s':>9} {'payload B/s':>11} {'wire B/s':>9} share"
        )
        for key, v in rows.items():
            lines.append(
                f"{key[:78]:78} {v['writes_per_s']:9.2f} {v['payload_bytes_per_s']:11.0f}"
                f" {v['wire_bytes_per_s']:9.0f} {100 * v['wire_bytes_per_s'] / total:5.1f}%"
            )
        lines.append(
            f"{'TCP pure ACKs (kernel)':78} {get('ack_packets_per_s', 0):9.2f} {0:11.0f}"
            f" {acks:9.0f} {100 * acks / total:5.1f}%"
        )
    return "\n".join(lines)


def protocols_table(result: Mapping[str, Any]) -> str:
    """Markdown: one row per protocol group, with its share of bytes and packets."""
    groups = grouped(result)
    total_b = sum(v["b"] for v in groups.values()) or 1.0
    total_w = sum(v["w"] for v in groups.values()) or 1.0
    lines = [
        "| protocol | bytes/s (wire) | writes/s (= TCP segments) | share of bytes"
        " | share of packets | of which yamux/multistream framing (B/s, writes/s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, v in sorted(groups.items(), key=lambda item: -item[1]["b"]):
        lines.append(
            f"| {name} | {v['b']:.0f} | {v['w']:.1f} | {100 * v['b'] / total_b:.1f} %"
            f" | {100 * v['w'] / total_w:.1f} % | {v['fb']:.0f} B/s, {v['fw']:.1f}/s |"
        )
    lines.append(
        f"| **total (instrumented estimate)** | **{total_b:.0f}** | **{total_w:.1f}** | | | |"
    )
    lines.append(
        f"| measured on lo (same window) | {result.get('bytes_per_s', 0):.0f}"
        f" | {result.get('packets_per_s', 0):.1f} | | | |"
    )
    framing_b = sum(v["fb"] for v in groups.values())
    framing_w = sum(v["fw"] for v in groups.values())
    lines.append(
        f"\nframing (yamux window updates, SYN/ACK/FIN/RST frames, multistream-select) in all:"
        f" {framing_b:.0f} B/s ({100 * framing_b / total_b:.0f} %),"
        f" {framing_w:.1f} writes/s ({100 * framing_w / total_w:.0f} %)"
    )
    lines.append(
        f"headline: rss {result.get('rss_mib', 0):.1f} MiB,"
        f" cpu {result.get('cpu_percent', 0):.2f} % (median), window {result.get('window')} s,"
        f" converged {result.get('converged')}, {result.get('views_ok')}"
    )
    return "\n".join(lines)


def compare_table(results: Iterable[Mapping[str, Any]]) -> str:
    """Markdown: one row per run with the headline figures and the main groups."""
    lines = [
        "| run | change | KB/s sent | packets/s | CPU % (median) | RSS MiB | converged / views"
        " | digests B/s | pings B/s | pings writes/s | kad B/s | GossipSub framing writes/s |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        groups = grouped(result) if result.get("breakdown") else {}

        def total(prefix: str, field: str = "b", groups: dict[str, Group] = groups) -> float:
            return sum(v[field] for name, v in groups.items() if name.startswith(prefix))

        changes = {k: v for k, v in result.get("overrides", {}).items() if v}
        lines.append(
            f"| {result.get('label')} | `{json.dumps(changes)}`"
            f" | {result.get('bytes_per_s', 0) / 1000:.1f} | {result.get('packets_per_s', 0):.1f}"
            f" | {result.get('cpu_percent', 0):.2f} | {result.get('rss_mib', 0):.1f}"
            f" | {result.get('converged')} / {result.get('views_ok')}"
            f" | {total('GossipSub data: health'):.0f} | {total('liveness'):.0f}"
            f" | {total('liveness', 'w'):.1f} | {total('Kademlia'):.0f}"
            f" | {total('GossipSub yamux', 'w'):.1f} |"
        )
    return "\n".join(lines)


def _load(path: str) -> Result:
    with open(path) as handle:
        loaded: Result = json.load(handle)
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("protocols", help="per-protocol table of one run").add_argument("result")
    compare = sub.add_parser("compare", help="one row per run (first: the baseline)")
    compare.add_argument("results", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "protocols":
        print(protocols_table(_load(args.result)))
    else:
        print(compare_table(_load(path) for path in args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
