"""Streams a hostile peer opens and never finishes (a slowloris), shared by
:meth:`RoguePeer.hold_streams <devnet.rogue.RoguePeer.hold_streams>` and
:meth:`Crowd.hold_streams <devnet.rogue_crowd.Crowd.hold_streams>`: the count of what the
target ended (:class:`HeldStreams`) and the opening and watching of the streams.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

# The rogue peer logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.rogue")


MAX_HELD = 1024  # streams one hold_streams may open


class HeldStreams:
    """What :meth:`RoguePeer.hold_streams` holds: streams tried, opened, ended by the
    target."""

    def __init__(self) -> None:
        self.attempted = 0
        self.opened = 0
        self.ended = 0  # refused, reset or closed by the target
        self._changed = trio.Event()

    def _opened(self) -> None:
        self.opened += 1
        self._notify()

    def _ended(self) -> None:
        self.ended += 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    @property
    def open(self) -> int:
        """Streams we hold that the target has not ended."""
        return self.attempted - self.ended

    async def until_ended(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until the target has ended at least ``count`` of them (TooSlowError)."""
        with trio.fail_after(timeout):
            while self.ended < count:
                await self._changed.wait()


@asynccontextmanager
async def _held_streams(
    hosts: Sequence[IHost], target: str, protocol: str, data: bytes, timeout: float
) -> AsyncIterator[HeldStreams]:
    """One never-finished stream to ``target`` from each of ``hosts`` (a host listed n
    times opens n); see :meth:`RoguePeer.hold_streams`."""
    pid = ID.from_base58(target)
    held = HeldStreams()
    streams: list[INetStream] = []
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(timeout):
                for host in hosts:
                    held.attempted += 1
                    try:
                        stream = await host.new_stream(pid, [TProtocol(protocol)])
                    except Exception as exc:
                        logger.info("held stream to %s refused: %r", target, exc)
                        held._ended()
                        continue
                    streams.append(stream)
                    held._opened()
                    if data:
                        with contextlib.suppress(Exception):  # refused already
                            await stream.write(data)
                    nursery.start_soon(_watch_held, stream, held)
            try:
                yield held
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for stream in streams:
                with contextlib.suppress(Exception):
                    await stream.reset()


async def _watch_held(stream: INetStream, held: HeldStreams) -> None:
    # We never write again; a read returns or raises only when the target closes or
    # resets its side (it sends nothing on these protocols).
    with contextlib.suppress(Exception):
        while await stream.read(1024):
            pass
    held._ended()
