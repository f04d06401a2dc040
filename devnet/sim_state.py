"""The state the parts of a :class:`~devnet.testing.MeshNetwork` share, and its lookups.

A MeshNetwork is one object assembled from parts of one concern each, every part a class
in a module of its own. They share the attributes ``MeshNetwork.__init__`` sets, declared
here with the lookups every part makes (a node by name, who is live, who a partition keeps
apart). A part that calls another part's methods derives from that part, so every call is
one mypy checks and the parts stack one way, bottom to top:

* this state;
* the topology's links (:mod:`devnet.sim_links`), the hooks on each in-process host
  (:mod:`devnet.sim_hooks`) and reading the nodes (:mod:`devnet.sim_reading`), each on the
  state alone;
* starting nodes (:mod:`devnet.sim_startup`), on the links and the hooks;
* faults on nodes (:mod:`devnet.sim_faults`) and on the network
  (:mod:`devnet.sim_partition`), on starting nodes;
* waiting on the nodes (:mod:`devnet.sim_waits`), on reading them and on the hooks' record
  of failed pings;
* ``MeshNetwork`` (:mod:`devnet.testing`), the faults and the waits together.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from devnet.authority import LocalAuthority
from devnet.sim_nodes import LinkFault, SimNode, _LagMonitor
from devnet.sim_topology import Topology
from mesh.config import NodeConfig

if TYPE_CHECKING:
    from devnet.rogue import RoguePeer


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

    # -- the partition -----------------------------------------------------------------

    def _group_of(self, name: str) -> frozenset[str] | None:
        """The group of node ``name`` under the partition; None without one."""
        if self._groups is None:
            return None
        return next((g for g in self._groups if name in g), frozenset((name,)))

    def _blocked(self, name: str, peer_id: str) -> bool:
        """Whether node ``name`` may not talk to ``peer_id`` under the partition."""
        group = self._group_of(name)
        if group is None:
            return False
        other = self.names().get(peer_id)
        if other is None:
            return False  # a stranger (a rogue peer): the partition is about our nodes
        return other not in group
