"""py-libp2p's per-frame locks, taken without a scheduler pass while nobody holds them.

trio's ``Lock.acquire`` and ``Semaphore.acquire`` are checkpoints: they yield to the
scheduler even when the lock is free. py-libp2p 0.8.1 takes such locks several times for
every frame it reads or writes (the TCP stream's read and write locks, yamux's stream
table, write and window locks, the net stream's state lock), so on an idle 10-node
cluster 93 of a node's 228 task steps a second were a free lock being taken; a step is a
pass of trio's scheduler, an ``epoll_wait`` included (a trio Instrument in every node,
devnet/cost_breakdown.py, 2026-12-05).

:func:`install` gives those objects a :class:`QuickLock` (or :class:`QuickSemaphore`): a
free one is taken at once, a held one is waited for as before. Fairness is kept: trio
hands a released lock straight to its first waiter, so ``acquire_nowait`` fails while
anyone waits. What the acquire no longer is: a point where the task can be cancelled or
descheduled. Every path that takes these locks goes on to a socket call or waits on an
event, and those still are.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import trio

__all__ = ["QuickLock", "QuickSemaphore", "install"]

_installed = False


class QuickLock:
    """A ``trio.Lock`` (it is one inside) whose uncontended acquire does not yield."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def acquire(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    def acquire_nowait(self) -> None:
        self._lock.acquire_nowait()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def statistics(self) -> Any:
        return self._lock.statistics()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class QuickSemaphore:
    """A ``trio.Semaphore`` whose acquire does not yield while a unit is free. Released by
    any task, unlike a lock (py-libp2p's ReadWriteLock needs that)."""

    __slots__ = ("_sem",)

    def __init__(self, initial_value: int) -> None:
        self._sem = trio.Semaphore(initial_value)

    async def acquire(self) -> None:
        try:
            self._sem.acquire_nowait()
        except trio.WouldBlock:
            await self._sem.acquire()

    def acquire_nowait(self) -> None:
        self._sem.acquire_nowait()

    def release(self) -> None:
        self._sem.release()

    @property
    def value(self) -> int:
        return self._sem.value

    def statistics(self) -> Any:
        return self._sem.statistics()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _quicken(obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        current = getattr(obj, name, None)
        if isinstance(current, trio.Lock):
            setattr(obj, name, QuickLock())
        elif isinstance(current, trio.Semaphore):
            setattr(obj, name, QuickSemaphore(current.value))


def _wrap_init(cls: type, names: tuple[str, ...]) -> None:
    original: Callable[..., None] = cls.__init__  # type: ignore[misc]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _quicken(self, names)

    cls.__init__ = __init__  # type: ignore[misc]


def install() -> None:
    """Idempotent. Objects made before it keep trio's locks."""
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.stream.net_stream import NetStream
    from libp2p.stream_muxer import rw_lock
    from libp2p.stream_muxer.yamux import yamux

    global _installed
    if _installed:
        return
    _installed = True
    _wrap_init(TrioTCPStream, ("read_lock", "write_lock"))
    _wrap_init(yamux.YamuxStream, ("window_lock", "close_lock"))
    _wrap_init(yamux.Yamux, ("streams_lock", "_write_lock"))
    _wrap_init(NetStream, ("_state_lock",))
    _wrap_init(rw_lock.ReadWriteLock, ("_readers_lock", "_writer_lock"))
