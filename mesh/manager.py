"""The check manager: registration, a trio scheduler, cached results and the rolled-up status.

Each enabled check runs in its own task on its own interval, inside its own timeout, so a
check that hangs or raises only ever produces a failed result for itself. Results are
stored as they arrive and every reader (HTTP, metrics, gossip) reads the cache: nothing
waits for a check to run.

The schedule is fixed-rate from the check's first run (runs at t, t+interval, ...); a run
that overruns its slot starts the next one at once rather than piling up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from mesh.errors import CheckRegistrationError
from mesh.flap import CheckState, FlapState, Thresholds, observe
from mesh.history import DEFAULT_MAX_ENTRIES, Transition, TransitionLog
from mesh.model import CheckResult, FailureReason, HealthCheck, Status, SystemStatus
from mesh.score import ScoredCheck, component_scores, system_score
from mesh.status import CheckView, decide_status, shutdown_reason

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's own annotations for mypy; its
    # TaskStatus is the same protocol as trio.TaskStatus.
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

WallClock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """Handed to listeners after every run of every check."""

    check: HealthCheck
    result: CheckResult
    before: FlapState
    after: FlapState
    # Whether the checker itself worked: it returned a CheckResult within its timeout
    # (healthy or not). False when it hung, raised or returned garbage.
    completed: bool = True
    # Why the run failed (None when it passed): the label of the failure counter.
    failure: FailureReason | None = None

    @property
    def transition(self) -> bool:
        return self.before.state is not self.after.state


ResultListener = Callable[[ResultEvent], None]
ShutdownRequest = Callable[[str], None]


class CheckManager:
    def __init__(
        self,
        *,
        node_id: str,
        version: str,
        thresholds: Thresholds | None = None,
        shutdown_after: int | None = None,
        history_size: int = DEFAULT_MAX_ENTRIES,
        wall_clock: WallClock = time.time,
    ) -> None:
        self.node_id = node_id
        self.version = version
        self.thresholds = thresholds or Thresholds()
        # By default a critical check ends the node when it has failed as often in a row as
        # it takes to turn failing (MaxFailedProbes): never on one transient failure.
        self.shutdown_after = shutdown_after or self.thresholds.fail_after
        self.history = TransitionLog(history_size)
        self._wall = wall_clock
        self.start_time = wall_clock()
        self.last_update = self.start_time
        self._checks: dict[str, HealthCheck] = {}
        self._flap: dict[str, FlapState] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._listeners: list[ResultListener] = []
        self._shutdown_handler: ShutdownRequest | None = None
        self._shutdown_requested = False
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._last_status = Status.STARTING
        # Bumped by every change that can move decide(), system_score() or
        # component_scores(): a reader may keep their values while it stays the same.
        self.generation = 0

    # -- registration ------------------------------------------------------------------

    def register(self, check: HealthCheck) -> None:
        if not check.name:
            raise CheckRegistrationError("a health check needs a non-empty name")
        if check.name in self._checks:
            raise CheckRegistrationError(f"health check {check.name!r} is already registered")
        for label, value in (("interval", check.interval), ("timeout", check.timeout)):
            if not (math.isfinite(value) and value > 0):
                raise CheckRegistrationError(
                    f"health check {check.name!r}: {label} must be a positive number of seconds,"
                    f" got {value!r}"
                )
        self._checks[check.name] = check
        self._flap[check.name] = FlapState()
        self.generation += 1
        if self._nursery is not None and check.enabled:
            self._nursery.start_soon(self._schedule, check)
        log.debug("registered check %s (critical=%s)", check.name, check.critical)

    def unregister(self, name: str) -> None:
        if name not in self._checks:
            raise CheckRegistrationError(f"no health check named {name!r} is registered")
        del self._checks[name]
        del self._flap[name]
        self.generation += 1
        scope = self._scopes.pop(name, None)
        if scope is not None:
            scope.cancel()

    def get(self, name: str) -> HealthCheck:
        try:
            return self._checks[name]
        except KeyError:
            raise CheckRegistrationError(f"no health check named {name!r} is registered") from None

    @property
    def checks(self) -> list[HealthCheck]:
        return list(self._checks.values())

    def flap_state(self, name: str) -> FlapState:
        return self._flap[name]

    def add_listener(self, listener: ResultListener) -> None:
        self._listeners.append(listener)

    def set_shutdown_handler(self, handler: ShutdownRequest) -> None:
        """Called once, with a reason, when a critical check stays failing (the reference's
        ``SetShutdownManager``)."""
        self._shutdown_handler = handler

    # -- running -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every enabled check on its schedule until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for check in self.checks:
                if check.enabled:
                    nursery.start_soon(self._schedule, check)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def _schedule(self, check: HealthCheck) -> None:
        with trio.CancelScope() as scope:
            self._scopes[check.name] = scope
            next_run = trio.current_time() + check.start_delay
            await trio.sleep_until(next_run)
            while True:
                await self.run_check(check)
                next_run = max(next_run + check.interval, trio.current_time())
                await trio.sleep_until(next_run)

    async def run_check(self, check: HealthCheck) -> CheckResult:
        """Run one check once, inside its timeout, and record the result."""
        check.last_run = self._wall()
        started = trio.current_time()
        result: CheckResult | None = None
        completed = False
        failure: FailureReason | None = None
        with trio.move_on_after(check.timeout) as scope:
            try:
                outcome = await check.checker()
            except Exception as exc:  # a raising check is a failed result, never a dead task
                result = CheckResult.fail(
                    f"check raised {type(exc).__name__}: {exc}",
                    error=f"{type(exc).__name__}: {exc}",
                )
                failure = FailureReason.EXCEPTION
            else:
                completed = isinstance(outcome, CheckResult) and isinstance(outcome.healthy, bool)
                result = _as_result(outcome)
                if not completed:
                    failure = FailureReason.INVALID_RESULT
        if scope.cancelled_caught or result is None:
            completed = False
            result = CheckResult.fail(f"check timed out after {check.timeout:g}s", error="timeout")
            failure = FailureReason.TIMEOUT
        if not result.healthy and failure is None:
            failure = FailureReason.UNHEALTHY
        finished = replace(result, latency=trio.current_time() - started, timestamp=self._wall())
        self._record(check, finished, completed, failure)
        return finished

    def _record(
        self,
        check: HealthCheck,
        result: CheckResult,
        completed: bool,
        failure: FailureReason | None = None,
    ) -> None:
        if self._checks.get(check.name) is not check:
            return  # unregistered while it ran
        check.last_result = result
        before = self._flap[check.name]
        after = observe(before, result.healthy, self.thresholds, warning=result.warning)
        self._flap[check.name] = after
        self.generation += 1
        self.last_update = result.timestamp
        event = ResultEvent(check, result, before, after, completed, failure)
        if event.transition:
            self.history.append(
                Transition(
                    check=check.name,
                    from_state=before.state,
                    to_state=after.state,
                    at=result.timestamp,
                    message=result.message,
                    consecutive=max(after.consecutive_failures, after.consecutive_successes),
                )
            )
            log_level = logging.WARNING if after.state is CheckState.FAILING else logging.INFO
            log.log(
                log_level,
                "check %s %s -> %s: %s",
                check.name,
                before.state,
                after.state,
                result.message,
            )
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken observer must not stop the checks
                log.exception("result listener failed for check %s", check.name)
        self._note_status()
        self._maybe_request_shutdown()

    def _note_status(self) -> None:
        status, message = self.decide()
        if status is not self._last_status:
            level = logging.INFO if status.serving or status is Status.STOPPING else logging.WARNING
            log.log(level, "node status %s -> %s: %s", self._last_status, status, message)
            self._last_status = status

    def _maybe_request_shutdown(self) -> None:
        if self._shutdown_requested or self._stopping:
            return
        reason = shutdown_reason(self._views(), self.shutdown_after)
        if reason is None:
            return
        self._shutdown_requested = True
        log.error("requesting graceful shutdown: %s", reason)
        if self._shutdown_handler is not None:
            self._shutdown_handler(reason)

    def begin_stopping(self) -> None:
        """From now on the node reports ``stopping``; readiness and liveness answer 503."""
        self._stopping = True
        self.generation += 1
        self._note_status()

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- reading -----------------------------------------------------------------------

    def _views(self) -> list[CheckView]:
        return [CheckView(c.name, c.enabled, c.critical, self._flap[c.name]) for c in self.checks]

    def _scored(self) -> list[ScoredCheck]:
        return [
            ScoredCheck(
                c.component_name, c.critical, c.enabled, self._flap[c.name].state, c.last_result
            )
            for c in self.checks
        ]

    def decide(self) -> tuple[Status, str]:
        return decide_status(self._stopping, self._views())

    def status(self) -> SystemStatus:
        status, message = self.decide()
        now = self._wall()
        return SystemStatus(
            status=status,
            message=message,
            checks={c.name: c.last_result for c in self.checks if c.last_result is not None},
            uptime=max(0.0, now - self.start_time),
            start_time=self.start_time,
            last_update=self.last_update,
            version=self.version,
            node_id=self.node_id,
        )

    def uptime(self) -> float:
        return max(0.0, self._wall() - self.start_time)

    def system_score(self) -> float:
        if self._stopping:
            return 0.0
        return system_score(self._scored())

    def component_scores(self) -> dict[str, float]:
        return component_scores(self._scored())


def _as_result(outcome: object) -> CheckResult:
    if isinstance(outcome, CheckResult):
        if isinstance(outcome.healthy, bool):
            return outcome
        return CheckResult.fail(
            f"check returned a result whose 'healthy' is {type(outcome.healthy).__name__},"
            " not bool",
            error="invalid result",
        )
    return CheckResult.fail(
        f"check returned {type(outcome).__name__}, expected CheckResult", error="invalid result"
    )
