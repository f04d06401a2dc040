"""A hostile libp2p peer under the test's control.

:class:`RoguePeer` is a real py-libp2p node (``adapters.libp2p_host.open_p2p_node``: Noise,
Yamux, GossipSub with strict signing, Kademlia in server mode) that does what a broken or
malicious peer would: publish arbitrary bytes on any topic, forge health statements in
another node's name, replay messages it captured, write undecodable frames onto a
GossipSub stream, answer probes wrongly or never, hold streams open without finishing them
(a slowloris), serve corrupted DHT values, push values and records our nodes must refuse,
and flood. Everything it sends is signed with its own key, as GossipSub's strict signing
demands; a statement that names another node as its author is therefore a forgery our
nodes can tell (``signer_mismatch``).

Get one from a simulation (``async with net.rogue(connect_to=[node]) as rogue``), or stand
alone with :func:`open_rogue`. Every flood is bounded by a count and a rate.

A stranger also mints identities for free and gives each a connection of its own:
:func:`open_crowd` makes such a :class:`Crowd` (bare hosts, each with a fresh key) that
publishes probes signed by each identity over its own connection, holds streams open from
all of them, and stalls the negotiation of streams the targets open back.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

# The parts of the rogue peer and the crowd live in the devnet.rogue_* modules; every name
# this module defined before the split is imported back (``X as X``: explicit re-export).
from adapters.libp2p_host import open_p2p_node
from adapters.libp2p_link import LibP2PLink
from adapters.p2p_config import P2PConfig
from adapters.p2p_node import P2PNode
from devnet.rogue_base import MAX_CAPTURED as MAX_CAPTURED
from devnet.rogue_base import MAX_FLOOD as MAX_FLOOD
from devnet.rogue_base import ProbeMode, _peer_id
from devnet.rogue_base import _RogueState as _RogueState
from devnet.rogue_crowd import MAX_CROWD as MAX_CROWD
from devnet.rogue_crowd import Crowd, CrowdMember, open_crowd
from devnet.rogue_crowd import _bare_host as _bare_host
from devnet.rogue_crowd import _close_quietly as _close_quietly
from devnet.rogue_crowd import _leaves as _leaves
from devnet.rogue_crowd import _run_bare_host as _run_bare_host
from devnet.rogue_crowd import _StallingCommunicator as _StallingCommunicator
from devnet.rogue_gossip import _Gossip
from devnet.rogue_held import MAX_HELD as MAX_HELD
from devnet.rogue_held import HeldStreams
from devnet.rogue_held import _held_streams as _held_streams
from devnet.rogue_services import _ignore_answer as _ignore_answer
from devnet.rogue_services import _Services
from mesh.digest import TOPIC
from probes.probe_wire import TOPIC as PROBE_TOPIC

if TYPE_CHECKING:
    from libp2p.kad_dht.pb.kademlia_pb2 import Record

    # The node type from the layer below the toolkit: devnet.testing imports this module
    # (MeshNetwork.rogue), so importing devnet.testing back would close a circle.
    from devnet.sim_nodes import SimNode

__all__ = [
    "PROBE_TOPIC",
    "TOPIC",
    "Crowd",
    "CrowdMember",
    "HeldStreams",
    "ProbeMode",
    "RoguePeer",
    "open_crowd",
    "open_rogue",
]

logger = logging.getLogger(__name__)


class RoguePeer(_Gossip, _Services):
    """A hostile peer. ``node`` is its running :class:`~adapters.p2p_node.P2PNode`."""

    def __init__(self, node: P2PNode, nursery: trio.Nursery, names: Mapping[str, str]) -> None:
        self.node = node
        self.peer_id = node.peer_id
        self._nursery = nursery
        self._names = dict(names)  # peer id -> simulation name, for messages only
        self._captured: dict[str, deque[rpc_pb2.Message]] = {}
        self._seq = 0
        self.probe_mode: ProbeMode = "honest"
        self.probes_seen = 0
        self.probe_answers_sent = 0
        self.dht_gets_corrupted = 0
        self._link = LibP2PLink(node.host)
        self._corrupting = False
        self._original_get: Callable[[bytes], Record | None] | None = None
        self._answering = False

    # -- links -----------------------------------------------------------------------

    @property
    def addr(self) -> str:
        return self.node.listen_addrs[0]

    async def connect(self, target: SimNode | str) -> str:
        """Connect to a simulation node (or a multiaddr). An in-process node dials us, as
        it would a bootstrap peer, so that we are in its Kademlia routing table too;
        anything else we dial. Returns the peer id."""
        handle = getattr(target, "handle", None)
        if handle is not None and getattr(target, "running", False):
            await handle.p2p.connect(self.addr)
            return str(target.peer_id)  # type: ignore[union-attr]
        addr = target if isinstance(target, str) else target.p2p_addr
        return await self.node.connect(addr)

    async def disconnect(self, target: SimNode | str) -> None:
        with contextlib.suppress(Exception):
            await self.node.host.disconnect(ID.from_base58(_peer_id(target)))

    async def until_subscribed(
        self, target: SimNode | str, topic: str = TOPIC, timeout: float = 15.0
    ) -> None:
        """Wait until GossipSub tells us ``target`` subscribes to ``topic``, our own pubsub
        stream to it is up and, where we subscribe too, it is in our mesh (so that our
        publishes reach it). Raises TimeoutError."""
        pid = ID.from_base58(_peer_id(target))
        pubsub = self.node.guarded_pubsub
        with trio.fail_after(timeout):
            # Polling: py-libp2p offers no event for either. Its subscription arrives on
            # the target's stream to us, but GossipSub picks publish targets only among
            # peers our own stream reached (router.peer_protocol): under load that came
            # later, and what we published in between went to nobody. And since we are
            # subscribed, we publish to our mesh only: when the subscription came before
            # our stream, GossipSub grafts the target at its next heartbeat, up to a
            # second later (a CI run lost all of test_rogue's garbage that way).
            router = pubsub.router

            def ready() -> bool:
                return (
                    pid in pubsub.peer_topics.get(topic, ())
                    and pid in pubsub.peers
                    and pid in router.peer_protocol
                    and (topic not in router.mesh or pid in router.mesh[topic])
                )

            while not ready():  # noqa: ASYNC110
                await trio.sleep(0.05)


@asynccontextmanager
async def open_rogue(
    key_file: Path, *, names: Mapping[str, str] | None = None
) -> AsyncIterator[RoguePeer]:
    """A running rogue peer on 127.0.0.1 with a key of its own; stopped on exit."""
    config = P2PConfig(key_file=key_file, listen_port=0)
    async with open_p2p_node(config) as node, trio.open_nursery() as nursery:
        rogue = RoguePeer(node, nursery, names or {})
        await rogue.capture(TOPIC)
        try:
            yield rogue
        finally:
            nursery.cancel_scope.cancel()
