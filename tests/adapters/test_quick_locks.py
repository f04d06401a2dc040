"""QuickLock and QuickSemaphore (adapters/quick_locks.py): no scheduler pass when free,
waiting and fairness as trio's when held."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.io.utils import read_exactly
from libp2p.peer.id import ID

from adapters import quick_locks
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from adapters.quick_locks import QuickLock, QuickSemaphore

ECHO = TProtocol("/chorus-test/echo/1.0.0")


class _Steps(trio.abc.Instrument):
    """Counts the scheduler passes of one task."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1


async def _passes(lock: object) -> int:
    """Scheduler passes our task takes to take and give back ``lock``."""
    steps = _Steps(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(steps)
    try:
        async with lock:  # type: ignore[attr-defined]
            pass
    finally:
        trio.lowlevel.remove_instrument(steps)
    return steps.count


@pytest.mark.parametrize("make", [QuickLock, lambda: QuickSemaphore(1)])
async def test_a_free_lock_is_taken_without_a_scheduler_pass(make) -> None:  # type: ignore[no-untyped-def]
    assert await _passes(make()) == 0


async def test_trio_locks_take_a_scheduler_pass_even_when_free() -> None:
    # What QuickLock saves.
    assert await _passes(trio.Lock()) == 1
    assert await _passes(trio.Semaphore(1)) == 1


@pytest.mark.parametrize("make", [QuickLock, lambda: QuickSemaphore(1)])
async def test_a_held_lock_is_waited_for_and_handed_on_in_order(make) -> None:  # type: ignore[no-untyped-def]
    lock = make()
    order: list[str] = []

    async def holder(task_status=trio.TASK_STATUS_IGNORED) -> None:  # type: ignore[no-untyped-def]
        async with lock:
            task_status.started()
            await trio.sleep(1)
            order.append("holder")

    async def waiter(name: str) -> None:
        async with lock:
            order.append(name)

    async with trio.open_nursery() as nursery:
        await nursery.start(holder)
        nursery.start_soon(waiter, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "second")
        await trio.testing.wait_all_tasks_blocked()
        # Held and waited for: a newcomer does not jump the queue.
        with pytest.raises(trio.WouldBlock):
            lock.acquire_nowait()
    assert order == ["holder", "first", "second"]


async def test_a_semaphore_is_released_by_another_task() -> None:
    # py-libp2p's ReadWriteLock releases its writer semaphore from whichever reader is last.
    sem = QuickSemaphore(1)
    await sem.acquire()
    assert sem.value == 0

    async def release() -> None:
        sem.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
    assert sem.value == 1


async def test_a_lock_is_released_only_by_its_holder() -> None:
    lock = QuickLock()
    await lock.acquire()
    assert lock.locked()

    async def release() -> None:
        lock.release()

    with pytest.RaisesGroup(RuntimeError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release)
    lock.release()
    assert not lock.locked()


def test_install_quickens_py_libp2p_objects_made_after_it() -> None:
    from libp2p.stream_muxer.rw_lock import ReadWriteLock

    quick_locks.install()
    quick_locks.install()  # idempotent: one wrapper, not two
    rw = ReadWriteLock()
    assert isinstance(rw._readers_lock, QuickLock)
    assert isinstance(rw._writer_lock, QuickSemaphore)


@pytest.mark.network
async def test_real_connections_use_quick_locks_and_carry_data(
    p2p_config: Callable[..., P2PConfig],
) -> None:
    got = trio.Event()

    async def echo(stream: INetStream) -> None:
        await stream.write(await stream.read(5))
        got.set()

    async with open_p2p_node(p2p_config("a")) as a, open_p2p_node(p2p_config("b")) as b:
        b.host.set_stream_handler(ECHO, echo)  # type: ignore[arg-type]
        await a.connect(b.listen_addrs[0])
        stream = await a.host.new_stream(ID.from_base58(b.peer_id), [ECHO])
        await stream.write(b"hello")
        with trio.fail_after(10):
            assert await read_exactly(stream, 5) == b"hello"
            await got.wait()
        muxed = stream.muxed_conn
        assert isinstance(muxed.streams_lock, QuickLock)  # type: ignore[attr-defined]
        assert isinstance(muxed._write_lock, QuickLock)  # type: ignore[attr-defined]
        assert isinstance(stream.muxed_stream.window_lock, QuickLock)  # type: ignore[attr-defined]
