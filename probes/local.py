"""Checks of the node itself: database, disk, memory and the combined resource check.

Names, intervals, timeouts and criticality are the reference's ("Built-in Health Checks":
CreateDatabaseCheck, CreateDiskSpaceCheck, CreateMemoryCheck; "Enhanced Health Checks" 6,
Resource Health Check). Each factory returns a ``HealthCheck`` whose checker only measures
and judges: the manager owns the timeout, latency, timestamp, and turning exceptions into
failed results, so a failing *source* (psutil raising, a stats fake set to fail) propagates.
The one exception is the database ping, whose failure *is* the negative outcome the reference
reports ("Database ping failed: ...").

Usage is over its threshold when strictly greater: "alert at 90%" means 90.0% still passes,
and a threshold of 1.0 never fires.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

from mesh.errors import CheckError
from mesh.model import CheckResult, HealthCheck
from probes.cpu_window import CpuMean, CpuWindow
from probes.system_stats import PsutilStats, SystemStats

# The ``type: ignore[call-arg]`` on trio.to_thread.run_sync: libp2p pulls in trio-typing
# 0.10, whose stubs shadow trio's own and predate trio 0.23's ``abandon_on_cancel`` (they
# know only its old name, ``cancellable``).

# The reference's properties, in seconds.
DATABASE_INTERVAL = 30.0
DATABASE_TIMEOUT = 10.0
DISK_INTERVAL = 60.0
DISK_TIMEOUT = 5.0
DISK_SPACE = "disk-space"
MEMORY = "memory"
RESOURCE_HEALTH = "resource-health"
MEMORY_INTERVAL = 30.0
MEMORY_TIMEOUT = 5.0
RESOURCE_INTERVAL = 60.0
RESOURCE_TIMEOUT = 5.0  # the reference gives none; a local read that takes 5 s is itself sick

Ping = Callable[[], Awaitable[None]] | Callable[[], None]


def _validate_threshold(name: str, value: float) -> float:
    """``value`` if it is a usable usage threshold, else a ValueError naming the parameter."""
    # Written as a negated range so NaN, which fails every comparison, is rejected too.
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return value


def _reading(resource: str, value: float) -> float:
    """``value`` if it is a plausible usage fraction; garbage from a source is an error, not 0%."""
    # NaN compares false against any threshold and would pass as healthy, so refuse it here.
    if not math.isfinite(value) or value < 0.0:
        raise CheckError(f"{resource} usage source returned {value!r}")
    return value


def _percent(fraction: float) -> str:
    """A threshold as a percentage without invented precision: 0.9 -> "90%", 0.875 -> "87.5%"."""
    return f"{fraction * 100:g}%"


def _error_text(exc: BaseException) -> str:
    """The exception's message, or its type when it has none (``TimeoutError()``)."""
    return str(exc) or type(exc).__name__


def _is_async_callable(fn: object) -> bool:
    # ``iscoroutinefunction`` sees through functools.partial and bound methods; the second test
    # catches objects whose ``__call__`` is ``async def``.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - we need the method itself, not callable()
    )


# --- database -----------------------------------------------------------------------------


def database_check(name: str, ping: Ping) -> HealthCheck:
    """The reference's CreateDatabaseCheck: critical, every 30 s, 10 s timeout.

    ``ping`` returns normally when the database answers and raises when it does not. It may be
    an ``async def`` function (or a partial of one, or an object with ``async def __call__``),
    awaited on the trio thread; anything else is plain and runs in a worker thread, so the
    manager's timeout can abandon a driver call that hangs.
    """
    ping_is_async = _is_async_callable(ping)

    async def call_ping() -> None:
        if ping_is_async:
            await cast(Callable[[], Awaitable[None]], ping)()
            return
        # A plain callable that hands back a coroutine (``lambda: conn.ping()`` over an async
        # driver) is refused by trio with a TypeError, so it reports as a failed ping rather
        # than a false "OK" with the coroutine never run.
        await trio.to_thread.run_sync(ping, abandon_on_cancel=True)  # type: ignore[call-arg]

    async def check_database() -> CheckResult:
        try:
            await call_ping()
        except Exception as exc:
            # Only Exception: trio.Cancelled (the manager's timeout) is a BaseException and must
            # reach the manager untouched.
            return CheckResult.fail(
                f"Database ping failed: {_error_text(exc)}", error=_error_text(exc)
            )
        return CheckResult.ok("Database connectivity OK")

    return HealthCheck(
        name=name,
        checker=check_database,
        description=f"Database connectivity of {name}",
        interval=DATABASE_INTERVAL,
        timeout=DATABASE_TIMEOUT,
        critical=True,
    )


# --- disk and memory ----------------------------------------------------------------------


def disk_space_check(
    path: str, threshold: float = 0.90, *, stats: SystemStats | None = None
) -> HealthCheck:
    """The reference's CreateDiskSpaceCheck: "disk-space", warning only, every 60 s, 5 s timeout.

    Fails when the filesystem holding ``path`` is more than ``threshold`` full.
    """
    _validate_threshold("threshold", threshold)
    source = stats if stats is not None else PsutilStats()

    async def check_disk() -> CheckResult:
        # statvfs on a dead NFS mount never returns: run it where the timeout can abandon it.
        usage = _reading(
            "disk",
            await trio.to_thread.run_sync(source.disk_fraction, path, abandon_on_cancel=True),  # type: ignore[call-arg]
        )
        details: dict[str, Any] = {"path": path, "usage": usage, "threshold": threshold}
        if usage > threshold:
            return CheckResult.fail(
                f"Disk usage of {path} at {usage:.1%}, over {_percent(threshold)}", **details
            )
        return CheckResult.ok(f"Disk usage of {path} at {usage:.1%}", **details)

    return HealthCheck(
        name=DISK_SPACE,
        checker=check_disk,
        description=f"Free space on the filesystem holding {path}",
        interval=DISK_INTERVAL,
        timeout=DISK_TIMEOUT,
        critical=False,
    )


def memory_check(threshold: float = 0.85, *, stats: SystemStats | None = None) -> HealthCheck:
    """The reference's CreateMemoryCheck: "memory", warning only, every 30 s, 5 s timeout."""
    _validate_threshold("threshold", threshold)
    source = stats if stats is not None else PsutilStats()

    async def check_memory() -> CheckResult:
        usage = _reading("memory", source.memory_fraction())
        details: dict[str, Any] = {"usage": usage, "threshold": threshold}
        if usage > threshold:
            return CheckResult.fail(
                f"Memory usage at {usage:.1%}, over {_percent(threshold)}", **details
            )
        return CheckResult.ok(f"Memory usage at {usage:.1%}", **details)

    return HealthCheck(
        name=MEMORY,
        checker=check_memory,
        description="Physical memory in use",
        interval=MEMORY_INTERVAL,
        timeout=MEMORY_TIMEOUT,
        critical=False,
    )


# --- combined resources -------------------------------------------------------------------


def headroom(usage: float, threshold: float) -> float:
    """How much of the band between ``threshold`` and 100% is still free, clamped to [0, 1].

    ``clamp((1 - usage) / (1 - threshold), 0, 1)``: 1.0 anywhere at or below the threshold,
    falling linearly to 0.0 at 100% usage. A threshold of 1.0 leaves no band: 1.0 up to full,
    0.0 beyond (only a broken source reports more than full).
    """
    if threshold >= 1.0:
        return 1.0 if usage <= 1.0 else 0.0
    return min(1.0, max(0.0, (1.0 - usage) / (1.0 - threshold)))


def resource_score(usages: dict[str, float], thresholds: dict[str, float]) -> float:
    """The resource component's score: the headroom of the worst resource.

    The minimum, not the mean, because one full resource sinks the node however idle the
    others are. So the score is 1.0 exactly when the check passes and below 1.0 exactly when
    it fails, and it keeps falling as the worst resource gets fuller.
    """
    return min(headroom(usages[name], thresholds[name]) for name in usages)


def _cpu_note(cpu: CpuMean, window: CpuWindow) -> str:
    """What the CPU figure is a mean of: "(60 s mean)", or why it is not judged yet."""
    if cpu.judged:
        return f"({cpu.span:.0f} s mean)"
    return f"(not judged before {window.min_span:g} s of readings)"


def resource_health_check(
    stats: SystemStats,
    *,
    path: str,
    cpu_threshold: float = 0.90,
    memory_threshold: float = 0.90,
    disk_threshold: float = 0.90,
    cpu_window: CpuWindow | None = None,
) -> HealthCheck:
    """The reference's Resource Health Check: "resource-health", warning only, every 60 s.

    Reads CPU, memory and the disk holding ``path``; fails when any is over its threshold and
    names those in the message. Details carry each usage and threshold and the ``score``
    (see ``resource_score``) for the "resources" component.

    CPU is judged on its mean over ``cpu_window`` (by default the last 60 s, see
    ``probes.cpu_window``), not on one reading: a node's first run would otherwise judge its
    own start-up, and flap control keeps a first verdict for two passes, minutes at this
    interval (issue 14). Until the window holds enough readings, CPU is reported but neither
    fails the check nor lowers the score (``cpu_judged`` false). Memory and disk are levels,
    not rates, and a start-up does not fill them: they are judged as read.
    """
    thresholds = {
        "cpu": _validate_threshold("cpu_threshold", cpu_threshold),
        "memory": _validate_threshold("memory_threshold", memory_threshold),
        "disk": _validate_threshold("disk_threshold", disk_threshold),
    }
    window = cpu_window if cpu_window is not None else CpuWindow()

    async def check_resources() -> CheckResult:
        # A CPU reading is the mean since the previous one; reading it on every run (and only
        # here) makes the readings tile the time between runs without gaps.
        now = trio.current_time()
        window.add(now, _reading("cpu", stats.cpu_fraction()))
        cpu = window.mean(now)
        usages = {
            "cpu": cpu.mean,
            "memory": _reading("memory", stats.memory_fraction()),
            "disk": _reading(
                "disk",
                await trio.to_thread.run_sync(stats.disk_fraction, path, abandon_on_cancel=True),  # type: ignore[call-arg]
            ),
        }
        judged = {name: usage for name, usage in usages.items() if name != "cpu" or cpu.judged}
        over = [name for name, usage in judged.items() if usage > thresholds[name]]
        details: dict[str, Any] = {
            **usages,
            **{f"{name}_threshold": limit for name, limit in thresholds.items()},
            "cpu_window": cpu.span,
            "cpu_judged": cpu.judged,
            "path": path,
            "over": over,
            "score": resource_score(judged, thresholds),
        }
        notes = {"cpu": f" {_cpu_note(cpu, window)}"}
        summary = ", ".join(
            f"{name} {usage:.1%}{notes.get(name, '')}" for name, usage in usages.items()
        )
        if over:
            breaches = ", ".join(
                f"{name} {usages[name]:.1%} > {_percent(thresholds[name])}{notes.get(name, '')}"
                for name in over
            )
            return CheckResult.fail(f"Resource usage over threshold: {breaches}", **details)
        return CheckResult.ok(f"Resource usage within thresholds: {summary}", **details)

    return HealthCheck(
        name=RESOURCE_HEALTH,
        checker=check_resources,
        description=f"CPU (mean over {window.window:g} s), memory and disk ({path}) usage",
        interval=RESOURCE_INTERVAL,
        timeout=RESOURCE_TIMEOUT,
        critical=False,
        component="resources",
    )
