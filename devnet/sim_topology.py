"""Topologies: :func:`_edges` turns a topology name into links among node indexes.

Plain values, no network: the network records the links by node name and dials them
(:mod:`devnet.sim_links`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Topology = Literal["auto", "ring", "ring2", "chain", "star", "full"] | Sequence[tuple[int, int]]
# "auto" uses ring2 (four links a node) up to this many nodes and ring (two) beyond. Every
# link costs the shared event loop CPU (py-libp2p signs and checks a peer record in every
# pubsub RPC, sends IDONTWANTs and yamux window updates): measured on this 2-core machine,
# 10 nodes on ring2 use about 36 % of a core and 14 saturate it; 20 on ring about 40 %.
AUTO_RING2_MAX = 10


def _edges(topology: Topology, n: int) -> list[tuple[int, int]]:
    """Links among nodes 0..n-1 as (earlier, later) index pairs."""
    if not isinstance(topology, str):
        return [(min(a, b), max(a, b)) for a, b in topology]
    if topology == "auto":
        topology = "ring2" if n <= AUTO_RING2_MAX else "ring"
    if topology == "full" or n <= 3:
        return [(a, b) for b in range(n) for a in range(b)]
    if topology == "chain":
        return [(i - 1, i) for i in range(1, n)]
    if topology == "star":
        return [(0, i) for i in range(1, n)]
    if topology in ("ring", "ring2"):
        # A circulant graph: "ring" links each node to the next (C_n(1): two links each;
        # one failure never splits it), "ring2" also to the one after (C_n(1, 2): four
        # links each, four disjoint paths between any two nodes, so any three nodes can
        # fail without splitting the rest). Either way a contiguous block of nodes stays
        # connected on its own, so a partition into blocks leaves each side whole.
        offsets = (1,) if topology == "ring" else (1, 2)
        edges = {(min(i, (i + d) % n), max(i, (i + d) % n)) for i in range(n) for d in offsets}
        return sorted(edges)
    raise ValueError(f"unknown topology {topology!r}")
