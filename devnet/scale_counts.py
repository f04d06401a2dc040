"""What ``python -m devnet.scale_run`` reads and counts, pure enough to test apart: a
namespace's sent bytes, per-observer detection times and false deaths from the views'
transitions (polled histories and the nodes' own log lines), and percentiles."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from devnet.bench_loss_counts import SAME_ENTRY
from devnet.cluster import DevnetError

__all__ = [
    "detection",
    "false_deaths",
    "logged_transitions",
    "nearest_rank",
    "parse_net_dev",
    "sent_on_eth0",
]

ETHERNET_HEADER = 14


def sent_on_eth0(pid: int) -> tuple[int, int]:
    """(IPv4 bytes, packets) sent on eth0 of the network namespace process ``pid`` is in."""
    return parse_net_dev(Path(f"/proc/{pid}/net/dev").read_text(), "eth0")


def parse_net_dev(text: str, interface: str) -> tuple[int, int]:
    """(IPv4 bytes, packets) sent on ``interface`` from the text of ``/proc/net/dev``."""
    for line in text.splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == interface:
            fields = [int(x) for x in counters.split()]
            sent, packets = fields[8], fields[9]
            return sent - ETHERNET_HEADER * packets, packets
    raise DevnetError(f"no {interface} in /proc/net/dev (not in a devnet namespace?)")


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def detection(
    entries: set[tuple[int, str, str, float]], victim: str, observers: set[int], sent: float
) -> dict[int, float]:
    """Observer -> seconds from ``sent`` (wall clock) to its first transition of ``victim``
    into dead at or after it, from the views' history entries."""
    found: dict[int, float] = {}
    for observer, peer, to, at in entries:
        if peer == victim and to == "dead" and observer in observers and at >= sent - 0.01:
            found[observer] = min(found.get(observer, float("inf")), max(0.0, at - sent))
    return found


_LOGGED = re.compile(r"^cluster: (\S+) (\w+) -> (\w+) \(")


def logged_transitions(index: int, lines: Iterable[str]) -> set[tuple[int, str, str, float]]:
    """The (observer, peer, to, wall time) transitions a node logged (adapters/gossip_metrics
    logs every one): complete, where the polls see only what is not alive when they ask."""
    found: set[tuple[int, str, str, float]] = set()
    for line in lines:
        try:
            record = json.loads(line)
            match = _LOGGED.match(str(record.get("message", "")))
            if match is None:
                continue
            at = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        found.add((index, match.group(1), match.group(3), at))
    return found


def false_deaths(entries: set[tuple[int, str, str, float]], victims: dict[str, float]) -> int:
    """Transitions into dead of members that were alive at the time. ``victims``: peer ->
    when it was signalled; each observer's first death of a victim at or after that is the
    detection (however late), any other is false. The same transition, read from a log and
    from polls, comes back a few ms apart: deaths of one pair closer than SAME_ENTRY are
    one."""
    count = 0
    last: dict[tuple[int, str], float] = {}
    detected: set[tuple[int, str]] = set()
    for observer, peer, to, at in sorted(entries, key=lambda e: (e[0], e[1], e[3])):
        if to != "dead":
            continue
        pair = (observer, peer)
        repeat = pair in last and at - last[pair] < SAME_ENTRY
        last[pair] = at
        if repeat:
            continue
        signalled = victims.get(peer)
        if signalled is not None and at >= signalled - 0.01 and pair not in detected:
            detected.add(pair)
            continue
        count += 1
    return count
