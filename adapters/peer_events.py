"""Peers coming and going: per-connection libp2p notifications as per-peer events.

:class:`PeerEvents` calls listeners with a peer id when its first connection opens and
when its last one begins to close, and remembers where each peer was authenticated (the
dial-back rules of ``adapters.dialback`` read it through ``P2PNode``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import multiaddr  # type: ignore[import-untyped]  # ships no py.typed
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID

__all__ = ["MAX_DIALLED_PEERS", "PeerEvents", "PeerListener", "hook_connection_close"]

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")

PeerListener = Callable[[str], None]

# Peers whose dialled address and IP we remember (newest kept): a few hundred bytes each.
MAX_DIALLED_PEERS = 4096


def _remember(table: OrderedDict[ID, Any], peer_id: ID, value: Any) -> None:
    table[peer_id] = value
    table.move_to_end(peer_id)
    while len(table) > MAX_DIALLED_PEERS:
        table.popitem(last=False)


def _closing(conn: object) -> bool:
    event = getattr(conn, "event_closed", None)
    return bool(event is not None and event.is_set())


def hook_connection_close() -> None:
    """Have ``SwarmConn.close`` tell its swarm's ``chorus_on_closing`` first (see
    PeerEvents). Class-wide and once: py-libp2p binds the method per connection."""
    from libp2p.network.connection.swarm_connection import SwarmConn

    original = SwarmConn.close
    if getattr(original, "chorus_hooked", False):
        return

    async def close(self: SwarmConn) -> None:
        if not self.event_closed.is_set():
            hook = getattr(self.swarm, "chorus_on_closing", None)
            if hook is not None:
                try:
                    hook(self)
                except Exception:  # the close must go on whatever a listener does
                    logger.exception("connection-closing hook failed")
        await original(self)

    close.chorus_hooked = True  # type: ignore[attr-defined]
    SwarmConn.close = close  # type: ignore[method-assign]


class PeerEvents(INotifee):
    """Turns per-connection notifications into per-peer connected/disconnected calls.

    py-libp2p notifies a closed connection about 200 ms after it closed (it closes the
    muxer, resets the streams, then sleeps 0.1 s: SwarmConn._cleanup); we hear of it when
    the close begins instead (``closing``, called from the patched ``SwarmConn.close``),
    which is most of the time a killed peer takes to be suspected. A frozen peer's
    connection stays open: LinkPinger finds it.
    """

    def __init__(self, network: INetwork) -> None:
        self._network = network
        self._live: set[ID] = set()
        self.on_connected: list[PeerListener] = []
        self.on_disconnected: list[PeerListener] = []
        # peer -> (ip, port) where our last outbound connection to it was authenticated:
        # an address of its own listener that we saw answer as that peer, unlike the
        # addresses it advertises (a digest could aim our dial-backs anywhere).
        self.dialled: OrderedDict[ID, tuple[str, int]] = OrderedDict()
        # peer -> the IP its last authenticated connection (either way) came from.
        self.seen_ip: OrderedDict[ID, str] = OrderedDict()

    def _fire(self, listeners: list[PeerListener], peer_id: ID) -> None:
        for listener in list(listeners):
            try:
                listener(peer_id.to_base58())
            except Exception:
                logger.exception("peer listener %r failed for %s", listener, peer_id)

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        await trio.lowlevel.checkpoint()
        peer_id = conn.muxed_conn.peer_id
        self._remember_dialled(peer_id, conn)
        if _closing(conn):
            return  # closed before we got here: closing() had nothing to undo
        if peer_id not in self._live:
            self._live.add(peer_id)
            self._fire(self.on_connected, peer_id)

    def _remember_dialled(self, peer_id: ID, conn: INetConn) -> None:
        try:
            host, port = conn.muxed_conn.secured_conn.get_remote_address()  # type: ignore[attr-defined]
        except Exception:  # not a TCP connection we can name
            return
        _remember(self.seen_ip, peer_id, str(host))
        if str(getattr(conn, "direction", "")) == "outbound":
            _remember(self.dialled, peer_id, (str(host), int(port)))

    def closing(self, conn: INetConn) -> None:
        """``conn`` began to close: if it was the peer's last open one, it is gone."""
        peer_id = conn.muxed_conn.peer_id
        others = [
            other
            for other in self._network.connections.get(peer_id, ())
            if other is not conn and not _closing(other)
        ]
        if peer_id in self._live and not others:
            self._live.discard(peer_id)
            self._fire(self.on_disconnected, peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        await trio.lowlevel.checkpoint()
        peer_id = conn.muxed_conn.peer_id
        # The swarm drops the connection before notifying; another one may remain.
        if peer_id in self._live and not self._network.connections.get(peer_id):
            self._live.discard(peer_id)
            self._fire(self.on_disconnected, peer_id)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()
