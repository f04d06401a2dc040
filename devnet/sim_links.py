"""The topology's links (a part of :class:`~devnet.testing.MeshNetwork`): recorded by node
name, dialled from whichever side runs in this process, and refused across a partition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio

from devnet.sim_errors import SimulationError
from devnet.sim_nodes import SimNode
from devnet.sim_state import _MeshState

# The toolkit logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.testing")


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
