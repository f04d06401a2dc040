"""The state the parts of a :class:`~devnet.testing.MeshNetwork` share, and its lookups.

A MeshNetwork is one object assembled from parts of one concern each, every part a class
in a module of its own: starting nodes (:mod:`devnet.sim_startup`), the topology's links
(:mod:`devnet.sim_topology`), the hooks on each in-process host (:mod:`devnet.sim_hooks`),
faults on nodes (:mod:`devnet.sim_faults`) and on the network (:mod:`devnet.sim_partition`),
reading the nodes (:mod:`devnet.sim_reading`) and waiting on them (:mod:`devnet.sim_waits`).
They share the attributes ``MeshNetwork.__init__`` sets, declared here, and call each
other's methods through ``self``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from devnet.authority import LocalAuthority
from devnet.sim_nodes import LinkFault, SimNode, _LagMonitor
from mesh.config import NodeConfig

if TYPE_CHECKING:
    from devnet.rogue import RoguePeer
    from devnet.sim_topology import Topology


class _MeshState:
    """The attributes of a network (``MeshNetwork.__init__`` sets them) and its lookups."""

    _nursery: trio.Nursery
    authority: LocalAuthority | None
    inprocess_ping_timeout: float | None
    directory: Path
    config: NodeConfig
    topology: Topology
    lag_limit: float
    scale: float
    rng: random.Random
    nodes: list[SimNode]
    links: set[frozenset[str]]
    _groups: list[frozenset[str]] | None
    _severed: set[frozenset[str]]
    _link_faults: dict[tuple[str, str], LinkFault]
    _lag: _LagMonitor
    _spurious_pings: list[tuple[float, str, str]]
    _startups: list[tuple[float, float]]
    _started: bool
    _closed: bool
    _rogues: list[RoguePeer]
    dropped_by_link_faults: int

    # -- lookups -----------------------------------------------------------------------

    def node(self, who: SimNode | str) -> SimNode:
        """A node by SimNode, name ("n3") or peer id."""
        if isinstance(who, SimNode):
            return who
        for node in self.nodes:
            if who in (node.name, node.peer_id):
                return node
        raise KeyError(f"no node {who!r} in this simulation")

    @property
    def live(self) -> list[SimNode]:
        """Nodes running and not frozen: the ones the others should see alive."""
        return [n for n in self.nodes if n.live]

    @property
    def running(self) -> list[SimNode]:
        return [n for n in self.nodes if n.running]

    def names(self) -> dict[str, str]:
        """peer id -> node name, for every node ever started."""
        return {n.peer_id: n.name for n in self.nodes if n.peer_id}
