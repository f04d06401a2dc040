"""Our side of /ipfs/ping/1.0.0: py-libp2p's responder, with streams kept longer when idle.

py-libp2p 0.8.1's responder (``libp2p.host.ping.PingService``), as go-libp2p's, closes a
stream that carries no ping for 10 s. Our pinger keeps one stream per connection
(``LinkPinger.reuse_streams``) and comes back to a peer every ``n - 1`` ping intervals: 9.5 s
on average at 20 nodes, so about half its pings found the stream closed and opened a new
one. A new stream is about 20 TCP segments instead of 4, and a frozen peer cannot be told
on it from a slow one: the stream's first frames are two or more small segments, the frozen
process's kernel delays its ACK, ours resends the last one early (a tail-loss probe), and a
ping with a resend during it gets no early verdict in time (``adapters/tcp_witness.py``).

:class:`PingResponder` answers as py-libp2p's does (32 bytes echoed) and ends a stream only
after ``idle`` seconds without a ping: a minute by default, long enough for the round robin
of 60 peers. What a peer can hold with it stays bounded: at most ``per_peer`` streams per
peer; a new one beyond that resets the peer's oldest, not itself, because the stream in
use is the newest (py-libp2p's ``ping_connection`` leaves a timed-out stream open, and two
such would otherwise lock that peer's pings out for a whole ``idle``). An idle stream is
reset, not closed: a close leaves the stream's state with us until the peer closes its
side, which a hostile peer never does.
"""

from __future__ import annotations

import contextlib
import logging

import trio
from libp2p.abc import INetStream
from libp2p.host.ping import PING_LENGTH
from libp2p.io.utils import read_exactly

__all__ = ["PingResponder"]

logger = logging.getLogger(__name__)


class PingResponder:
    """Echo pings; see the module docstring. ``open(peer)`` counts streams being served."""

    def __init__(self, *, idle: float = 60.0, per_peer: int = 2, write_timeout: float = 10.0):
        if not (idle > 0 and per_peer >= 1 and write_timeout > 0):
            raise ValueError("idle and write_timeout must be > 0, per_peer >= 1")
        self.idle = idle
        self.per_peer = per_peer
        self.write_timeout = write_timeout
        self._open: dict[str, list[INetStream]] = {}  # peer -> its streams, oldest first

    def open(self, peer: str) -> int:
        return len(self._open.get(peer, ()))

    async def handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        streams = self._open.setdefault(peer, [])
        oldest = streams.pop(0) if len(streams) >= self.per_peer else None
        streams.append(stream)
        try:
            if oldest is not None:
                await _reset(oldest)  # its own handler ends on the reset
            await self._serve(stream)
        finally:
            served = self._open.get(peer)
            if served is not None:
                if stream in served:
                    served.remove(stream)
                if not served:
                    del self._open[peer]

    async def _serve(self, stream: INetStream) -> None:
        try:
            while True:
                with trio.move_on_after(self.idle) as waiting:
                    payload = await read_exactly(stream, PING_LENGTH)
                if waiting.cancelled_caught:
                    # Idle: reset, so that nothing of it stays with us; the pinger opens a
                    # new stream next time.
                    await _reset(stream)
                    return
                # Outside the idle timer: a cancelled write could leave the connection's
                # encryption out of step.
                with trio.fail_after(self.write_timeout):
                    await stream.write(payload)
        except Exception as exc:  # the peer closed or reset it, or sent something else
            logger.debug("ping stream from %s ended: %r", stream.muxed_conn.peer_id, exc)
            await _reset(stream)


async def _reset(stream: INetStream) -> None:
    with contextlib.suppress(Exception):
        await stream.reset()
