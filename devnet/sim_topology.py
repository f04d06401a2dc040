"""Topologies and the links they make (a part of :class:`~devnet.testing.MeshNetwork`).

:func:`_edges` turns a topology name into links among node indexes; the network records
the links by node name and dials them from whichever side runs in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Literal

import trio

from devnet.sim_errors import SimulationError
from devnet.sim_nodes import SimNode
from devnet.sim_state import _MeshState

# The toolkit logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.testing")


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


class _Links(_MeshState):
    """Recording and dialling the topology's links."""

    def _add_links(self, edges: Iterable[tuple[int, int]]) -> None:
        for a, b in edges:
            self.links.add(frozenset((self.nodes[a].name, self.nodes[b].name)))

    async def _dial_all(self, edges: Iterable[tuple[int, int]]) -> None:
        # One after another: a burst of simultaneous Noise handshakes is a CPU spike on
        # the shared loop, and dials on loopback take milliseconds.
        for a, b in edges:
            await self._dial(self.nodes[a], self.nodes[b])

    async def _dial(self, a: SimNode, b: SimNode) -> None:
        """Connect a and b from whichever side runs in this process (b first, like a
        joiner dialling its bootstrap peer). Two process nodes are linked by the later
        one's --bootstrap-peers (see _start_process), not here."""
        if not (a.live and b.live) or self._blocked(a.name, b.peer_id):
            return
        dialler, target = (b, a) if not b.process else (a, b)
        if dialler.process:
            return
        assert dialler.handle is not None
        from adapters.p2p_config import P2PError

        for attempt in range(3):
            try:
                await dialler.handle.p2p.connect(target.p2p_addr)
                return
            except P2PError as exc:
                logger.info(
                    "dial %s -> %s failed (%d): %s", dialler.name, target.name, attempt, exc
                )
                await trio.sleep(0.5 * (attempt + 1))
        raise SimulationError(f"cannot link {dialler.name} to {target.name}")

    def _links_of(self, node: SimNode) -> list[SimNode]:
        return [
            self.node(o) for link in self.links if node.name in link for o in link - {node.name}
        ]
