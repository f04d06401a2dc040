"""Faults on the network (a part of :class:`~devnet.testing.MeshNetwork`): partitions
into groups, healing, and delayed or lossy gossip links. The gates and the shaper that
enforce them sit on each in-process host (:mod:`devnet.sim_hooks`); who a partition keeps
apart is one of the network's lookups (:mod:`devnet.sim_state`).
"""

from __future__ import annotations

from collections.abc import Iterable

from devnet.sim_errors import UnsupportedFault
from devnet.sim_nodes import LinkFault, SimNode
from devnet.sim_startup import _Startup
from devnet.sim_views import _natural


class _NetworkFaults(_Startup):
    """Partitions and link faults: the state the hooks consult (built on starting nodes,
    for the links it dials again when it heals)."""

    async def partition(self, *groups: Iterable[SimNode | str]) -> None:
        """Split the nodes into ``groups`` (nodes named nowhere form one more group).
        Connections across groups close at once and cannot be made again until heal()."""
        named = [frozenset(self.node(x).name for x in g) for g in groups]
        rest = frozenset(n.name for n in self.nodes) - frozenset().union(*named)
        if rest:
            named.append(rest)
        for a in self.nodes:
            for b in self.nodes:
                if (
                    a.process
                    and b.process
                    and a.index < b.index
                    and frozenset((a.name, b.name)) in self.links
                ):
                    if not any(a.name in g and b.name in g for g in named):
                        raise UnsupportedFault(
                            f"cannot cut the link {a.name}-{b.name}: both are process nodes"
                        )
        self._groups = named
        self._severed |= {link for link in self.links if not any(link <= g for g in named)}
        await self._cut_blocked_connections()

    async def heal(self, *, redial: bool = True) -> None:
        """End the partition; with ``redial``, dial every severed link again at once."""
        self._groups = None
        severed, self._severed = self._severed, set()
        for node in self.live:
            if node.handle is not None:
                # Belt and braces: a dial refused by a peer's gate marks that peer as
                # failed in py-libp2p's 60 s negative cache; the gate is gone now.
                cache = getattr(node.handle.p2p.host.get_network(), "_negative_peer_cache", None)
                if cache is not None:
                    cache.clear()
        if redial:
            edges = []
            for link in severed:
                a, b = (self.node(x) for x in sorted(link, key=_natural))
                edges.append((a.index, b.index))
            with self._joining():
                await self._dial_all(edges)

    def set_link(
        self,
        sender: SimNode | str,
        receiver: SimNode | str,
        *,
        delay: float = 0.0,
        loss: float = 0.0,
        both_ways: bool = True,
    ) -> None:
        """Delay or drop the pubsub messages ``sender`` forwards to ``receiver`` (and the
        other way round with ``both_ways``). The receiving side must be in-process.
        ``set_link(a, b)`` with no delay and no loss clears the fault."""
        if not (0.0 <= loss <= 1.0 and delay >= 0.0):
            raise ValueError(f"need 0 <= loss <= 1 and delay >= 0, got {loss}, {delay}")
        pairs = [(self.node(sender), self.node(receiver))]
        if both_ways:
            pairs.append((pairs[0][1], pairs[0][0]))
        for src, dst in pairs:
            if dst.process:
                raise UnsupportedFault(f"link faults need an in-process receiver, not {dst.name}")
            key = (src.peer_id, dst.peer_id)
            if delay or loss:
                self._link_faults[key] = LinkFault(delay, loss)
            else:
                self._link_faults.pop(key, None)
