"""Graceful shutdown: hooks in four phases and components stopped by priority.

The order, after ``request()``:
1. ``pre-shutdown`` hooks (the node reports ``stopping`` before this, so readiness is 503
   from the first moment).
2. ``shutdown``: components, lowest priority number first; components with the same
   priority stop concurrently. Each has its own timeout; one that fails or overruns is
   logged and the rest carry on.
3. ``post-shutdown`` hooks, then 4. ``cleanup`` hooks.

The whole sequence runs under one overall timeout (30 s, as the reference's
``shutdown.NewManager(30*time.Second, ...)``); when it passes, the remaining work is
cancelled and the report says ``forced``. A process-level backstop for code that blocks the
event loop itself lives in the node runner (``adapters.node``), not here, so this stays
testable under trio's MockClock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby

import trio

from mesh.errors import MeshError

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_COMPONENT_TIMEOUT = 10.0

Step = Callable[[], Awaitable[None]]


class Phase(StrEnum):
    PRE_SHUTDOWN = "pre-shutdown"
    SHUTDOWN = "shutdown"
    POST_SHUTDOWN = "post-shutdown"
    CLEANUP = "cleanup"


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    stop: Step
    priority: int = 50  # lower stops first
    timeout: float = DEFAULT_COMPONENT_TIMEOUT


@dataclass(slots=True)
class ShutdownReport:
    reason: str
    failure: bool = False  # requested because something broke, not by an operator
    forced: bool = False
    failures: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.forced and not self.failures


class ShutdownManager:
    def __init__(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("shutdown timeout must be positive")
        self.timeout = timeout
        self._components: dict[str, Component] = {}
        self._hooks: dict[Phase, list[tuple[str, Step]]] = {phase: [] for phase in Phase}
        self._requested = trio.Event()
        self._reason = ""
        self._failure = False
        self._listeners: list[Callable[[str], None]] = []

    def register(self, component: Component) -> None:
        if component.name in self._components:
            raise MeshError(f"shutdown component {component.name!r} is already registered")
        self._components[component.name] = component

    def add_hook(self, phase: Phase, name: str, step: Step) -> None:
        self._hooks[phase].append((name, step))

    def on_request(self, listener: Callable[[str], None]) -> None:
        """Called synchronously at the moment shutdown is requested (before any phase)."""
        self._listeners.append(listener)

    def request(self, reason: str, *, failure: bool = False) -> bool:
        """Ask for shutdown; returns False if it was already requested. Safe from any task."""
        if self._requested.is_set():
            return False
        self._reason = reason
        self._failure = failure
        log.warning("shutdown requested: %s", reason)
        for listener in self._listeners:
            listener(reason)
        self._requested.set()
        return True

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    async def wait_requested(self) -> str:
        await self._requested.wait()
        return self._reason

    async def run(self) -> ShutdownReport:
        """Wait for a request, then run every phase; returns what happened."""
        reason = await self.wait_requested()
        report = ShutdownReport(reason, failure=self._failure)
        started = trio.current_time()
        with trio.move_on_after(self.timeout) as overall:
            await self._run_hooks(Phase.PRE_SHUTDOWN, report)
            await self._stop_components(report)
            await self._run_hooks(Phase.POST_SHUTDOWN, report)
            await self._run_hooks(Phase.CLEANUP, report)
        report.duration = trio.current_time() - started
        if overall.cancelled_caught:
            report.forced = True
            log.error("shutdown overran its %gs timeout; forcing exit", self.timeout)
        else:
            log.info(
                "shutdown finished in %.3fs (%d failures)", report.duration, len(report.failures)
            )
        return report

    async def _run_hooks(self, phase: Phase, report: ShutdownReport) -> None:
        for name, step in self._hooks[phase]:
            await _attempt(f"{phase} hook {name}", step, None, report)

    async def _stop_components(self, report: ShutdownReport) -> None:
        ordered = sorted(self._components.values(), key=lambda c: c.priority)
        for _priority, group in groupby(ordered, key=lambda c: c.priority):
            async with trio.open_nursery() as nursery:
                for component in group:
                    nursery.start_soon(
                        _attempt,
                        f"component {component.name}",
                        component.stop,
                        component.timeout,
                        report,
                    )


async def _attempt(label: str, step: Step, limit: float | None, report: ShutdownReport) -> None:
    with trio.move_on_after(limit if limit is not None else float("inf")) as scope:
        try:
            await step()
        except Exception as exc:  # one failing step must not stop the others
            log.error("%s failed: %s: %s", label, type(exc).__name__, exc)
            report.failures.append(f"{label}: {type(exc).__name__}: {exc}")
            return
    if scope.cancelled_caught:
        log.error("%s timed out after %gs", label, limit)
        report.failures.append(f"{label}: timed out after {limit:g}s")
