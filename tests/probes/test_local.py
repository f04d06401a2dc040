"""Tests of probes.local and probes.system_stats.

Threshold logic runs against ``FixedStats``; one group reads the real machine through
``PsutilStats``. Tests that show a blocking call is abandoned use the real clock with a short
``move_on_after`` and a blocker that gives up after a few seconds, so a regression fails the
test instead of hanging the run.
"""

from __future__ import annotations

import functools
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from mesh.errors import CheckError
from mesh.model import CheckResult, HealthCheck
from probes.cpu_window import CPU_WINDOW, CpuWindow
from probes.local import (
    database_check,
    disk_space_check,
    headroom,
    memory_check,
    resource_health_check,
    resource_score,
)
from probes.system_stats import FixedStats, PsutilStats, SystemStats


async def run(check: HealthCheck) -> CheckResult:
    result = await check.checker()
    assert isinstance(result, CheckResult)
    return result


async def run_judged(check: HealthCheck) -> CheckResult:
    """The second of two runs a window apart: the first primes the CPU window (needs a
    MockClock, the ``autojump_clock`` fixture)."""
    await run(check)
    await trio.sleep(CPU_WINDOW)
    result = await run(check)
    assert result.details.get("cpu_judged") is not False, result.message
    return result


# --- the reference's properties -----------------------------------------------------------


async def _noop_ping() -> None:
    pass


FAKE = FixedStats()

REFERENCE_PROPERTIES = [
    # make, name, interval, timeout, critical, component
    (lambda: database_check("db", _noop_ping), "db", 30.0, 10.0, True, "db"),
    (lambda: disk_space_check("/", stats=FAKE), "disk-space", 60.0, 5.0, False, "disk-space"),
    (lambda: memory_check(stats=FAKE), "memory", 30.0, 5.0, False, "memory"),
    (lambda: resource_health_check(FAKE, path="/"), "resource-health", 60.0, 5.0, False, "resources"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "name", "interval", "timeout", "critical", "component"), REFERENCE_PROPERTIES
)
def test_reference_properties(
    make: Callable[[], HealthCheck],
    name: str,
    interval: float,
    timeout: float,
    critical: bool,
    component: str,
) -> None:
    check = make()
    assert (check.name, check.interval, check.timeout, check.critical, check.component_name) == (
        name,
        interval,
        timeout,
        critical,
        component,
    )
    assert check.enabled


async def test_default_thresholds_are_the_references(autojump_clock: MockClock) -> None:
    memory = memory_check(stats=FixedStats(memory=0.85))
    disk = disk_space_check("/", stats=FixedStats(disk=0.90))
    resources = resource_health_check(FixedStats(cpu=0.9, memory=0.9, disk=0.9), path="/")
    # Exactly at each default threshold: still passing, and the details say which threshold.
    for check, key, expected in [
        (memory, "threshold", 0.85),
        (disk, "threshold", 0.90),
        (resources, "cpu_threshold", 0.90),
        (resources, "memory_threshold", 0.90),
        (resources, "disk_threshold", 0.90),
    ]:
        result = await (run_judged(check) if check is resources else run(check))
        assert result.healthy, result.message
        assert result.details[key] == expected


async def test_default_stats_source_is_psutil() -> None:
    # Without ``stats`` the checks read the real machine.
    disk = await run(disk_space_check("/", 1.0))
    memory = await run(memory_check(1.0))
    assert 0.0 < disk.details["usage"] <= 1.0
    assert 0.0 < memory.details["usage"] < 1.0


# --- threshold validation -----------------------------------------------------------------

BAD_THRESHOLDS = [0.0, -0.1, 1.01, 90.0, math.nan]


@pytest.mark.parametrize("bad", BAD_THRESHOLDS)
@pytest.mark.parametrize(
    ("parameter", "make"),
    [
        ("threshold", lambda t: disk_space_check("/", t, stats=FixedStats())),
        ("threshold", lambda t: memory_check(t, stats=FixedStats())),
        ("cpu_threshold", lambda t: resource_health_check(FixedStats(), path="/", cpu_threshold=t)),
        (
            "memory_threshold",
            lambda t: resource_health_check(FixedStats(), path="/", memory_threshold=t),
        ),
        (
            "disk_threshold",
            lambda t: resource_health_check(FixedStats(), path="/", disk_threshold=t),
        ),
    ],
)
def test_invalid_threshold_is_rejected(
    parameter: str, make: Callable[[float], HealthCheck], bad: float
) -> None:
    with pytest.raises(ValueError, match=rf"^{parameter} must be a fraction in \(0, 1\]"):
        make(bad)


@pytest.mark.parametrize("good", [1e-9, 0.5, 1.0])
def test_valid_threshold_edges_are_accepted(good: float) -> None:
    memory_check(good, stats=FixedStats())
    resource_health_check(FixedStats(), path="/", cpu_threshold=good, disk_threshold=good)


# --- disk and memory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "threshold", "healthy"),
    [
        (0.0, 0.9, True),
        (0.5, 0.9, True),
        (0.9, 0.9, True),  # at the threshold is not over it
        (0.9000001, 0.9, False),
        (1.0, 0.9, False),
        (1.0, 1.0, True),  # a threshold of 100% never fires
    ],
)
async def test_disk_space_threshold(usage: float, threshold: float, healthy: bool) -> None:
    stats = FixedStats(disk=usage)
    result = await run(disk_space_check("/var/lib/chorus", threshold, stats=stats))
    assert result.healthy is healthy
    assert stats.disk_paths == ["/var/lib/chorus"]
    assert result.details == {"path": "/var/lib/chorus", "usage": usage, "threshold": threshold}
    assert "/var/lib/chorus" in result.message


async def test_disk_space_failure_message() -> None:
    result = await run(disk_space_check("/data", 0.9, stats=FixedStats(disk=0.953)))
    assert result.message == "Disk usage of /data at 95.3%, over 90%"


@pytest.mark.parametrize(
    ("usage", "threshold", "healthy"),
    [(0.2, 0.85, True), (0.85, 0.85, True), (0.86, 0.85, False), (0.999, 0.875, False)],
)
async def test_memory_threshold(usage: float, threshold: float, healthy: bool) -> None:
    result = await run(memory_check(threshold, stats=FixedStats(memory=usage)))
    assert result.healthy is healthy
    assert result.details == {"usage": usage, "threshold": threshold}


async def test_memory_failure_message_keeps_threshold_precision() -> None:
    result = await run(memory_check(0.875, stats=FixedStats(memory=0.9)))
    assert result.message == "Memory usage at 90.0%, over 87.5%"


@pytest.mark.parametrize(
    "make",
    [
        lambda s: disk_space_check("/", stats=s),
        lambda s: memory_check(stats=s),
        lambda s: resource_health_check(s, path="/"),
    ],
)
async def test_failing_source_propagates_to_the_manager(
    make: Callable[[SystemStats], HealthCheck],
) -> None:
    # The manager turns exceptions into failed results; the checker must not swallow them.
    with pytest.raises(OSError, match="stat failed"):
        await make(FixedStats(error=OSError("stat failed"))).checker()


@pytest.mark.parametrize("garbage", [math.nan, math.inf, -0.1])
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda s: disk_space_check("/", stats=s), "disk"),
        (lambda s: memory_check(stats=s), "memory"),
        (lambda s: resource_health_check(s, path="/"), "cpu"),
        (lambda s: resource_health_check(s, path="/"), "disk"),
    ],
)
async def test_garbage_reading_is_an_error_not_healthy(
    make: Callable[[SystemStats], HealthCheck], field: str, garbage: float
) -> None:
    stats = FixedStats()
    setattr(stats, field, garbage)
    with pytest.raises(CheckError, match=f"^{field} usage source returned"):
        await make(stats).checker()


class BlockingStats(FixedStats):
    """``disk_fraction`` hangs like statvfs on a dead mount, until released or 5 s pass."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def disk_fraction(self, path: str) -> float:
        self.release.wait(timeout=5.0)
        return 0.5


@pytest.fixture
def blocking_stats() -> Iterator[BlockingStats]:
    stats = BlockingStats()
    yield stats
    stats.release.set()  # let the abandoned worker thread finish


@pytest.mark.parametrize(
    "make",
    [
        lambda s: disk_space_check("/", stats=s),
        lambda s: resource_health_check(s, path="/"),
    ],
)
async def test_hung_disk_read_is_abandoned_on_timeout(
    blocking_stats: BlockingStats, make: Callable[[SystemStats], HealthCheck]
) -> None:
    check = make(blocking_stats)
    started = trio.current_time()
    with trio.move_on_after(0.1) as scope:
        await check.checker()
    # Run on the trio thread, the read would hold the loop for the full 5 s and then return.
    assert scope.cancelled_caught
    assert trio.current_time() - started < 2.0


# --- combined resources -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "threshold", "expected"),
    [
        (0.0, 0.9, 1.0),
        (0.9, 0.9, 1.0),
        (0.75, 0.5, 0.5),
        (0.875, 0.5, 0.25),
        (1.0, 0.5, 0.0),
        (1.5, 0.5, 0.0),  # clamped
        (1.0, 1.0, 1.0),
        (1.25, 1.0, 0.0),
    ],
)
def test_headroom(usage: float, threshold: float, expected: float) -> None:
    assert headroom(usage, threshold) == expected


def test_resource_score_is_the_worst_headroom() -> None:
    thresholds = {"cpu": 0.5, "memory": 0.5, "disk": 0.5}
    assert resource_score({"cpu": 0.1, "memory": 0.75, "disk": 0.875}, thresholds) == 0.25
    assert resource_score({"cpu": 0.1, "memory": 0.2, "disk": 0.5}, thresholds) == 1.0


async def test_resource_health_all_within_thresholds(autojump_clock: MockClock) -> None:
    stats = FixedStats(cpu=0.125, memory=0.5, disk=0.25)
    result = await run_judged(resource_health_check(stats, path="/srv"))
    assert result.healthy
    assert result.message == (
        "Resource usage within thresholds: cpu 12.5% (60 s mean), memory 50.0%, disk 25.0%"
    )
    assert result.details == {
        "cpu": 0.125,
        "memory": 0.5,
        "disk": 0.25,
        "cpu_threshold": 0.9,
        "memory_threshold": 0.9,
        "disk_threshold": 0.9,
        "cpu_window": 60.0,
        "cpu_judged": True,
        "path": "/srv",
        "over": [],
        "score": 1.0,
    }
    assert stats.disk_paths == ["/srv", "/srv"]


@pytest.mark.parametrize(
    ("cpu", "memory", "disk", "over", "score"),
    [
        (0.75, 0.1, 0.1, ["cpu"], 0.5),
        (0.1, 0.75, 0.1, ["memory"], 0.5),
        (0.1, 0.1, 0.875, ["disk"], 0.25),
        (0.75, 0.1, 0.875, ["cpu", "disk"], 0.25),
        (1.0, 1.0, 1.0, ["cpu", "memory", "disk"], 0.0),
    ],
)
async def test_resource_health_names_what_is_over(
    cpu: float, memory: float, disk: float, over: list[str], score: float, autojump_clock: MockClock
) -> None:
    check = resource_health_check(
        FixedStats(cpu=cpu, memory=memory, disk=disk),
        path="/",
        cpu_threshold=0.5,
        memory_threshold=0.5,
        disk_threshold=0.5,
    )
    result = await run_judged(check)
    assert not result.healthy
    assert result.details["over"] == over
    assert result.details["score"] == score
    assert result.message.startswith("Resource usage over threshold: ")
    for name in ("cpu", "memory", "disk"):
        assert (f"{name} " in result.message) is (name in over)


async def test_resource_health_message_format(autojump_clock: MockClock) -> None:
    check = resource_health_check(FixedStats(cpu=0.953), path="/", cpu_threshold=0.9)
    result = await run_judged(check)
    assert result.message == "Resource usage over threshold: cpu 95.3% > 90% (60 s mean)"


# --- CPU over a window (issue 14) ---------------------------------------------------------


class LoadedMachine(FixedStats):
    """A machine whose CPU load follows a schedule of trio-clock times, read as psutil reads
    it: each ``cpu_fraction`` is the exact mean load since the previous call (or since
    construction, as ``PsutilStats`` primes itself)."""

    def __init__(self, schedule: list[tuple[float, float]], memory: float = 0.3) -> None:
        # ``schedule``: (from time, load) steps in time order; the first step starts at -inf.
        super().__init__(memory=memory, disk=0.3)
        self.schedule = schedule
        self.last = trio.current_time()

    def _busy_until(self, t: float) -> float:
        # Integral of the load from the schedule's first step to t.
        busy = 0.0
        for (start, load), (end, _) in zip(
            self.schedule, [*self.schedule[1:], (math.inf, 0.0)], strict=True
        ):
            busy += load * max(0.0, min(t, end) - start)
        return busy

    def cpu_fraction(self) -> float:
        now, last = trio.current_time(), self.last
        self.last = now
        if now <= last:
            return 0.0
        return (self._busy_until(now) - self._busy_until(last)) / (now - last)


async def run_at(check: HealthCheck, times: list[float]) -> list[CheckResult]:
    results = []
    for t in times:
        await trio.sleep_until(t)
        results.append(await run(check))
    return results


async def test_a_start_up_spike_does_not_degrade_a_healthy_node(autojump_clock: MockClock) -> None:
    # Primed at 0, the node starts up at full CPU for 20 s, then idles at 5 %. The first run
    # reads only the start-up; judging that alone failed the check for minutes (issue 14).
    machine = LoadedMachine([(0.0, 1.0), (20.0, 0.05)])
    check = resource_health_check(machine, path="/")
    first, second, third = await run_at(check, [0.5, 60.5, 120.5])
    assert [r.healthy for r in (first, second, third)] == [True, True, True], first.message
    assert first.details["cpu"] == 1.0  # reported as read
    assert (first.details["cpu_judged"], first.details["over"]) == (False, [])
    assert first.details["score"] == 1.0
    assert first.message.startswith(
        "Resource usage within thresholds: cpu 100.0% (not judged before 30 s of readings)"
    )
    assert second.details["cpu"] == pytest.approx((19.5 * 1.0 + 40.5 * 0.05) / 60)
    assert second.details["cpu_judged"] is True
    assert third.details["cpu"] == pytest.approx(0.05)


async def test_a_burst_just_before_a_run_is_averaged_over_the_window(
    autojump_clock: MockClock,
) -> None:
    # Idle at 5 %, then 10 s at 100 % right before a run asked for on demand at 70 s: the
    # reading since the previous run says 100 %, the minute says 21 %.
    machine = LoadedMachine([(0.0, 0.05), (60.0, 1.0)])
    check = resource_health_check(machine, path="/")
    *_, on_demand = await run_at(check, [0.0, 60.0, 70.0])
    assert on_demand.healthy, on_demand.message
    assert on_demand.details["cpu"] == pytest.approx((50 * 0.05 + 10 * 1.0) / 60)


async def test_a_sustained_overload_still_fails_every_judged_run(
    autojump_clock: MockClock,
) -> None:
    machine = LoadedMachine([(0.0, 0.95)])
    check = resource_health_check(machine, path="/")
    results = await run_at(check, [0.0, 60.0, 120.0, 180.0])
    assert [r.healthy for r in results] == [True, False, False, False]
    for result in results[1:]:
        assert result.details["over"] == ["cpu"]
        assert result.details["cpu"] == pytest.approx(0.95)
        assert result.details["score"] == pytest.approx(0.5)
        assert result.message == "Resource usage over threshold: cpu 95.0% > 90% (60 s mean)"


async def test_the_window_is_the_checks_own_and_can_be_given(autojump_clock: MockClock) -> None:
    # A shorter window, judged after 5 s: 10 s at 95 % fail at once.
    machine = LoadedMachine([(0.0, 0.95)])
    window = CpuWindow(window=10.0, points=2, min_span=5.0)
    check = resource_health_check(machine, path="/", cpu_window=window)
    assert check.description == "CPU (mean over 10 s), memory and disk (/) usage"
    results = await run_at(check, [0.0, 10.0])
    assert [r.healthy for r in results] == [True, False]
    assert results[1].details["cpu_window"] == 10.0


async def test_memory_is_still_judged_on_the_first_run() -> None:
    # Memory is a level, not a rate: no window, no grace.
    result = await run(resource_health_check(FixedStats(memory=0.95), path="/"))
    assert not result.healthy
    assert result.details["over"] == ["memory"]


# --- database -----------------------------------------------------------------------------


class DatabaseDown(Exception):
    pass


async def test_database_async_ping_ok() -> None:
    calls: list[str] = []

    async def ping() -> None:
        await trio.lowlevel.checkpoint()
        calls.append("ping")

    result = await run(database_check("primary-db", ping))
    assert result == CheckResult.ok("Database connectivity OK")
    assert calls == ["ping"]


async def test_database_async_ping_failure() -> None:
    async def ping() -> None:
        raise DatabaseDown("connection refused")

    result = await run(database_check("primary-db", ping))
    assert not result.healthy
    assert result.message == "Database ping failed: connection refused"
    assert result.error == "connection refused"


async def test_database_sync_ping_ok_runs_in_a_worker_thread() -> None:
    threads: list[int] = []

    def ping() -> None:
        threads.append(threading.get_ident())

    result = await run(database_check("primary-db", ping))
    assert result.healthy
    assert result.message == "Database connectivity OK"
    assert threads and threads[0] != threading.get_ident()


async def test_database_sync_ping_failure() -> None:
    def ping() -> None:
        raise DatabaseDown("server closed the connection unexpectedly")

    result = await run(database_check("primary-db", ping))
    assert not result.healthy
    assert result.message == "Database ping failed: server closed the connection unexpectedly"
    assert result.error == "server closed the connection unexpectedly"


async def test_database_error_without_message_reports_its_type() -> None:
    def ping() -> None:
        raise TimeoutError

    result = await run(database_check("primary-db", ping))
    assert (result.message, result.error) == ("Database ping failed: TimeoutError", "TimeoutError")


async def test_database_async_callable_object_is_awaited() -> None:
    class Pinger:
        def __init__(self) -> None:
            self.pinged = False

        async def __call__(self) -> None:
            await trio.lowlevel.checkpoint()
            self.pinged = True
            raise DatabaseDown("replica lagging")

    pinger = Pinger()
    result = await run(database_check("replica", pinger))
    assert pinger.pinged
    assert result.error == "replica lagging"


async def test_database_plain_callable_returning_a_coroutine_is_not_ok() -> None:
    ran: list[bool] = []

    async def ping() -> None:
        ran.append(True)

    # Trio refuses a sync function that turns out async; that must not read as a healthy ping.
    result = await run(database_check("primary-db", lambda: ping()))
    assert not result.healthy
    assert result.error is not None and "asynchronous" in result.error
    assert ran == []


async def test_database_partial_of_async_ping_is_awaited() -> None:
    async def ping(reason: str) -> None:
        await trio.lowlevel.checkpoint()
        raise DatabaseDown(reason)

    result = await run(database_check("primary-db", functools.partial(ping, "auth failed")))
    assert result.error == "auth failed"


async def test_database_hung_sync_ping_is_abandoned_on_timeout() -> None:
    release = threading.Event()
    check = database_check("primary-db", lambda: release.wait(timeout=5.0) and None)
    started = trio.current_time()
    try:
        with trio.move_on_after(0.1) as scope:
            await check.checker()
    finally:
        release.set()
    # The cancellation reaches the manager as cancellation, not as a "ping failed" result.
    assert scope.cancelled_caught
    assert trio.current_time() - started < 2.0


# --- the real machine ---------------------------------------------------------------------


def test_psutil_stats_reads_sane_values(tmp_path: Path) -> None:
    stats = PsutilStats()
    assert isinstance(stats, SystemStats)

    # Keep one core busy, so the CPU delta since construction cannot honestly be zero.
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        pass
    cpu = stats.cpu_fraction()
    assert 0.0 < cpu <= 1.0

    assert 0.0 < stats.memory_fraction() < 1.0

    disk = stats.disk_fraction(str(tmp_path))
    usage = shutil.disk_usage(tmp_path)
    assert 0.0 < disk <= 1.0
    assert disk == pytest.approx(usage.used / (usage.used + usage.free), abs=0.01)


async def test_resource_health_with_psutil(tmp_path: Path) -> None:
    # Thresholds of 100% cannot fire, so the result is healthy and the details are real readings.
    check = resource_health_check(
        PsutilStats(),
        path=str(tmp_path),
        cpu_threshold=1.0,
        memory_threshold=1.0,
        disk_threshold=1.0,
    )
    result = await run(check)
    assert result.healthy, result.message
    for name in ("cpu", "memory", "disk"):
        assert 0.0 <= result.details[name] <= 1.0
    assert result.details["score"] == 1.0
