"""Which peers we are connected to, from libp2p's connection and ping-failure events.

``P2PNode`` calls its peer and ping-failure listeners on the network's task, which they
must never block (``P2PNode.add_peer_listener``). ``Connections``' listeners put each
event into a bounded channel instead (overflow is dropped and logged), and ``run`` takes
them out in order on the service's task: it keeps the set of connected peers and tells
the service of each change. P2PNode reports a peer's first connection and its last one
only, as the view requires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import trio

__all__ = ["Connections", "PeerEvent"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")

PeerEvent = tuple[Literal["connected", "disconnected", "ping_failed"], str]
# What the service does on an event: called with the peer and the view's time.
OnPeer = Callable[[str, float], None]


class Connections:
    """``peers`` are the peers we are connected to (ourselves never). The listeners
    ``connected``, ``lost`` and ``ping_failed`` may be called from any task; ``open``
    gives the channel ``run`` drains (events outside it are ignored), ``close`` ends it.
    ``on_connected``, ``on_disconnected`` and ``on_ping_failed`` (a connected peer's
    only) run on ``run``'s task; ``loop_failed`` counts and logs an error they raise."""

    def __init__(
        self,
        self_id: str,
        size: int,
        *,
        on_connected: OnPeer,
        on_disconnected: OnPeer,
        on_ping_failed: OnPeer,
        loop_failed: Callable[[str, Exception], None],
        clock: Callable[[], float],
    ) -> None:
        self._self_id = self_id
        self._size = size
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_ping_failed = on_ping_failed
        self._loop_failed = loop_failed
        self._clock = clock
        self._send: trio.MemorySendChannel[PeerEvent] | None = None
        self.peers: set[str] = set()

    def open(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        send, receive = trio.open_memory_channel[PeerEvent](self._size)
        self._send = send
        return receive

    def close(self) -> None:
        send, self._send = self._send, None
        if send is not None:
            send.close()

    def connected(self, peer: str) -> None:
        self._push(("connected", peer))

    def lost(self, peer: str) -> None:
        self._push(("disconnected", peer))

    def ping_failed(self, peer: str) -> None:
        self._push(("ping_failed", peer))

    def _push(self, event: PeerEvent) -> None:
        # Runs on the network's task (P2PNode.add_peer_listener): never block it.
        if self._send is None:
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            logger.warning("connection event %s %s dropped: queue full", *event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the service is stopping: its event loop has gone

    async def run(self, receive: trio.MemoryReceiveChannel[PeerEvent]) -> None:
        async with receive:
            async for kind, peer in receive:
                now = self._clock()
                try:
                    if kind == "connected":
                        self._connected(peer, now)
                    elif kind == "ping_failed":
                        if peer in self.peers:
                            self._on_ping_failed(peer, now)
                    else:
                        self._disconnected(peer, now)
                except Exception as exc:  # one event must not end connection tracking
                    self._loop_failed("handle", exc)

    def _connected(self, peer: str, now: float) -> None:
        if peer in self.peers or peer == self._self_id:
            return
        self.peers.add(peer)
        self._on_connected(peer, now)

    def _disconnected(self, peer: str, now: float) -> None:
        # P2PNode reports a peer's last connection only, as the view requires.
        if peer not in self.peers:
            return
        self.peers.discard(peer)
        self._on_disconnected(peer, now)
