"""What every part of the hostile peers shares (:mod:`devnet.rogue`, re-exported there):
the bounds on what they send, the probe-answer modes, how a target (a simulation node, a
peer id or a ``/p2p/`` multiaddr) names its peer id, and the state the parts of a
:class:`~devnet.rogue.RoguePeer` read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import trio
from libp2p.pubsub.pb import rpc_pb2

from adapters.libp2p_link import LibP2PLink
from adapters.p2p_node import P2PNode

if TYPE_CHECKING:
    from libp2p.kad_dht.pb.kademlia_pb2 import Record

    from devnet.sim_nodes import SimNode

ProbeMode = Literal["honest", "wrong", "never", "garbage"]

MAX_CAPTURED = 1024  # messages kept per topic
MAX_FLOOD = 100_000  # no flood sends more, whatever it is asked


def _peer_id(target: Any) -> str:
    if isinstance(target, str):
        return target.rsplit("/p2p/", 1)[-1]
    return str(target.peer_id)


class _RogueState:
    """The attributes ``RoguePeer.__init__`` sets, declared for the parts that read them
    (:mod:`devnet.rogue_gossip`, :mod:`devnet.rogue_services`), and its naming of targets."""

    node: P2PNode
    peer_id: str
    _nursery: trio.Nursery
    _names: dict[str, str]
    _captured: dict[str, deque[rpc_pb2.Message]]
    _seq: int
    probe_mode: ProbeMode
    probes_seen: int
    probe_answers_sent: int
    dht_gets_corrupted: int
    _link: LibP2PLink
    _corrupting: bool
    _original_get: Callable[[bytes], Record | None] | None
    _answering: bool

    def _name(self, target: SimNode | str) -> str:
        peer = _peer_id(target)
        return self._names.get(peer, peer)
