"""Random packet loss inside network namespaces with nftables (this kernel has no netem).

One table per namespace of a ``NetnsNet`` (devnet/cluster.py)::

    table inet chorus_loss {
        chain input {
            type filter hook input priority filter; policy accept;
            iifname "eth0" ip saddr != <bridge> counter
            iifname "eth0" ip saddr != <bridge> numgen random mod 100 < N counter drop
        }
    }

Input only, on purpose. A packet from A to B crosses A's output hook and B's input hook:
a rule on both would lose 1 - (1 - p)^2 of it (36 % at 20 %). And a drop at output is not
silent: the kernel fails the sender's sendto() with EPERM, which Serf logs and reacts to
and a lossy wire never tells. At input each direction of every link loses N % without a
word to either end. The bridge's address (the root namespace, where the bench polls
from) is spared, so that polls read the views instead of losing to the loss. The first
rule counts what the second one draws from, so the loss actually made can be reported.
Deleting a namespace deletes its table with it.

One-way loss (``set_loss(..., one_way=True)``) matches ``ip saddr { ... }`` instead: each
node loses only what some of its peers send (:func:`lossy_sources`), so every link loses in
one direction only. That is where a detector that reads its own kernel's view of a link
(adapters/tcp_witness.py: resends, duplicates) is easiest to fool: the requests arrive and
the answers, with the acknowledgements they carry, are lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from devnet.cluster import DevnetError, NetnsNet

__all__ = [
    "LOSS_TABLE",
    "loss_counters",
    "loss_ruleset",
    "loss_table",
    "lossy_sources",
    "parse_counters",
    "set_loss",
]

LOSS_TABLE = "chorus_loss"


def loss_table(percent: int | str, spared: str, sources: str | None = None) -> str:
    """The loss table in nft syntax (``percent`` may be a placeholder, for the report).
    ``sources``: an nft address set, "{ a, b }"; only packets from those are lost."""
    match = f'iifname "eth0" ip saddr != {spared}'
    if sources is not None:
        match = f'iifname "eth0" ip saddr {sources}'
    return (
        f"table inet {LOSS_TABLE} {{\n"
        "    chain input {\n"
        "        type filter hook input priority filter; policy accept;\n"
        f"        {match} counter\n"
        f"        {match} numgen random mod 100 < {percent} counter drop\n"
        "    }\n"
        "}\n"
    )


def lossy_sources(index: int, n: int) -> list[int]:
    """The nodes whose packets node ``index`` loses when each link loses in one direction
    only: from j > index when index + j is even, from j < index when it is odd. So of
    every pair exactly one end loses what the other sends, and from n >= 3 every node
    has links of both kinds (it loses on some, its peers lose on others)."""
    return [j for j in range(1, n + 1) if j != index and (j > index) == ((index + j) % 2 == 0)]


def loss_ruleset(percent: int, spared: str, sources: list[str] | None = None) -> str:
    """The nft script that (re)defines the loss table: ``percent`` of the packets arriving
    on eth0 from anyone but ``spared`` (the bridge: the poller) are dropped; with
    ``sources``, of those from these addresses only."""
    if not 0 <= percent <= 100:
        raise ValueError(f"loss must be 0-100 %, got {percent}")
    if sources is not None and not sources:
        raise ValueError("a one-way loss needs at least one source")
    listed = None if sources is None else "{ " + ", ".join(sources) + " }"
    # "add" then "delete" makes the script idempotent: the first run has nothing to
    # delete. One nft -f is one transaction, so no packet sees the table half replaced.
    return f"add table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n" + loss_table(
        percent, spared, listed
    )


def parse_counters(listing: str) -> tuple[int, int]:
    """(packets seen, packets dropped) from ``nft -j list table inet chorus_loss``: the
    counters of its first and second rule."""
    counts: list[int] = []
    for item in json.loads(listing).get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                counts.append(int(expr["counter"].get("packets", 0)))
    if len(counts) != 2:
        raise ValueError(f"expected the loss table's two counters, found {len(counts)}")
    return counts[0], counts[1]


def _nft(net: NetnsNet, index: int, *args: str, script: str | None = None) -> str:
    if shutil.which("nft") is None:
        raise DevnetError("nft is missing (apt-get install -y nftables)")
    done = subprocess.run(
        [*net.exec_prefix(index), "nft", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        raise DevnetError(f"nft in {net.ns(index)}: {done.stderr.strip()}")
    return done.stdout


def _spared(net: NetnsNet) -> str:
    return f"10.{net.octet}.77.254"  # the bridge's address in the root namespace


def set_loss(net: NetnsNet, n: int, percent: int, *, one_way: bool = False) -> None:
    """Make every link into the namespaces of nodes 1..n lose ``percent`` of its packets
    (replacing any earlier loss table, whose counters start again from zero); with
    ``one_way``, every link in one direction only (:func:`lossy_sources`)."""
    for i in range(1, n + 1):
        sources = [net.addr(j) for j in lossy_sources(i, n)] if one_way else None
        _nft(net, i, "-f", "-", script=loss_ruleset(percent, _spared(net), sources))


def loss_counters(net: NetnsNet, n: int) -> tuple[int, int]:
    """(packets seen, packets dropped) over nodes 1..n since their table was last set."""
    seen = dropped = 0
    for i in range(1, n + 1):
        a, b = parse_counters(_nft(net, i, "-j", "list", "table", "inet", LOSS_TABLE))
        seen, dropped = seen + a, dropped + b
    return seen, dropped
