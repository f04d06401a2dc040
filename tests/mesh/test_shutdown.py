"""Shutdown phases, priorities and timeouts on trio's virtual clock."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from mesh.errors import MeshError
from mesh.shutdown import Component, Phase, ShutdownManager


def recorder(log: list[tuple[float, str]], name: str, delay: float = 0.0):  # type: ignore[no-untyped-def]
    async def step() -> None:
        log.append((trio.current_time(), f"start {name}"))
        await trio.sleep(delay)
        log.append((trio.current_time(), f"end {name}"))

    return step


async def test_phases_and_priorities_in_order(autojump_clock: MockClock) -> None:
    log: list[tuple[float, str]] = []
    manager = ShutdownManager(timeout=30)
    manager.register(Component("http", recorder(log, "http", 1), priority=90))
    manager.register(Component("pubsub", recorder(log, "pubsub", 2), priority=10))
    manager.register(Component("dht", recorder(log, "dht", 3), priority=10))
    for phase in (Phase.CLEANUP, Phase.POST_SHUTDOWN, Phase.PRE_SHUTDOWN):
        manager.add_hook(phase, str(phase), recorder(log, str(phase)))
    requested: list[str] = []
    manager.on_request(requested.append)
    async with trio.open_nursery() as nursery:

        async def request_later() -> None:
            await trio.sleep(5)
            manager.request("test")

        nursery.start_soon(request_later)
        report = await manager.run()
    assert requested == ["test"]
    assert report.clean and report.reason == "test" and not report.failure
    assert report.duration == 4  # 3 s for the slower of the priority-10 pair, then 1 s
    # Same-priority components run concurrently; trio picks their start order at random.
    assert dict((event, at) for at, event in log) == {
        "start pre-shutdown": 5,
        "end pre-shutdown": 5,
        "start pubsub": 5,
        "start dht": 5,
        "end pubsub": 7,
        "end dht": 8,
        "start http": 8,
        "end http": 9,
        "start post-shutdown": 9,
        "end post-shutdown": 9,
        "start cleanup": 9,
        "end cleanup": 9,
    }
    assert [event for _, event in log][-6:] == [
        "start http",
        "end http",
        "start post-shutdown",
        "end post-shutdown",
        "start cleanup",
        "end cleanup",
    ]


async def test_failing_and_slow_components_do_not_stop_the_rest(autojump_clock: MockClock) -> None:
    log: list[tuple[float, str]] = []
    manager = ShutdownManager(timeout=30)

    async def broken() -> None:
        raise RuntimeError("boom")

    manager.register(Component("broken", broken, priority=1))
    manager.register(Component("stuck", recorder(log, "stuck", 100), priority=2, timeout=5))
    manager.register(Component("last", recorder(log, "last"), priority=3))
    manager.request("test", failure=True)
    report = await manager.run()
    assert not report.forced and report.failure
    assert report.failures == [
        "component broken: RuntimeError: boom",
        "component stuck: timed out after 5s",
    ]
    assert (5, "end last") in log


async def test_overall_timeout_forces(autojump_clock: MockClock) -> None:
    manager = ShutdownManager(timeout=30)
    never_ran: list[str] = []

    async def cleanup() -> None:
        never_ran.append("cleanup")

    manager.register(Component("a", recorder([], "a", 20), priority=1, timeout=25))
    manager.register(Component("b", recorder([], "b", 20), priority=2, timeout=25))
    manager.add_hook(Phase.CLEANUP, "cleanup", cleanup)
    manager.request("test")
    report = await manager.run()
    assert report.forced
    assert report.duration == 30
    assert never_ran == []


async def test_request_is_idempotent_and_names_must_be_unique(autojump_clock: MockClock) -> None:
    manager = ShutdownManager()
    assert manager.request("first")
    assert not manager.request("second")
    assert (await manager.run()).reason == "first"
    manager.register(Component("x", recorder([], "x")))
    with pytest.raises(MeshError, match="already registered"):
        manager.register(Component("x", recorder([], "x")))
