"""Reading a whole libp2p stream, bounded: what every request/response protocol here needs."""

from __future__ import annotations

from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

__all__ = ["read_to_eof"]


async def read_to_eof(stream: INetStream, limit: int) -> bytes | None:
    """The stream's bytes up to EOF, or None when the sender goes over ``limit``."""
    buf = bytearray()
    while True:
        try:
            chunk = await stream.read(limit + 1 - len(buf))
        except StreamEOF:
            return bytes(buf)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None
