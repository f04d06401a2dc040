"""An in-memory :class:`probes.ports.DirectLink` for tests, like memberlist's mock transport.

Every pair of reachable attached nodes is connected and delivery is inline, so probe and
responder tests run without sockets; ``adapters.libp2p_link`` is the real one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import trio

from probes.ports import LinkError, LinkHandler, SenderFilter
from probes.probe_wire import ACK_PROTOCOL

__all__ = ["InMemoryLink", "InMemoryLinkNetwork"]


class InMemoryLinkNetwork:
    """Fake direct links: every pair of reachable attached nodes is connected; delivery is
    inline (``send`` returns after the receiver's handler ran), like the pubsub fake."""

    def __init__(self) -> None:
        self._nodes: dict[str, InMemoryLink] = {}

    def attach(self, peer_id: str, *, protocols: Iterable[str] = (ACK_PROTOCOL,)) -> InMemoryLink:
        """A node that says it speaks ``protocols`` (what identify would tell), plus the
        ones it sets handlers for. By default a mesh node; ``protocols=()`` is a peer that
        does not run this mesh."""
        if peer_id in self._nodes:
            raise ValueError(f"peer {peer_id} is already attached")
        link = self._nodes[peer_id] = InMemoryLink(self, peer_id, protocols)
        return link

    def set_reachable(self, peer_id: str, reachable: bool) -> None:
        self._nodes[peer_id].reachable = reachable

    def _peers_of(self, peer_id: str) -> list[str]:
        if not self._nodes[peer_id].reachable:
            return []
        return [p for p, n in self._nodes.items() if p != peer_id and n.reachable]


class InMemoryLink:
    def __init__(
        self, network: InMemoryLinkNetwork, peer_id: str, protocols: Iterable[str] = ()
    ) -> None:
        self._net = network
        self.peer_id = peer_id
        self.reachable = True
        self.protocols = set(protocols)  # what this node says it speaks
        self._handlers: dict[str, tuple[LinkHandler, SenderFilter | None]] = {}
        self.sent: list[tuple[str, str, bytes]] = []  # (to, protocol, data), for asserts
        # Only "unexpected" (as LibP2PLink counts it): inline delivery never stalls.
        self.dropped: Counter[str] = Counter()

    def connected_peers(self) -> list[str]:
        return self._net._peers_of(self.peer_id)

    def speaks(self, peer_id: str, protocol: str) -> bool:
        node = self._net._nodes.get(peer_id)
        return node is not None and protocol in node.protocols

    async def announce(self) -> None:
        await trio.lowlevel.checkpoint()  # the fake's "identify" is always current

    async def send(self, peer_id: str, protocol: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if peer_id not in self._net._peers_of(self.peer_id):
            raise LinkError(f"{peer_id} is not connected")
        receiver = self._net._nodes[peer_id]
        registered = receiver._handlers.get(protocol)
        if registered is None:
            raise LinkError(f"{peer_id} does not speak {protocol}")
        handler, expected = registered
        if expected is not None and not expected(self.peer_id):
            receiver.dropped["unexpected"] += 1
            raise LinkError(f"{peer_id} reset the stream: not waiting for {self.peer_id}")
        self.sent.append((peer_id, protocol, data))
        await handler(self.peer_id, data)

    def set_handler(
        self, protocol: str, handler: LinkHandler, *, expected: SenderFilter | None = None
    ) -> None:
        self._handlers[protocol] = (handler, expected)
        self.protocols.add(protocol)  # as a real host lists its handlers in identify
