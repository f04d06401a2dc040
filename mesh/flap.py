"""Flap control for one check, in the style of Consul's ``failures_before_critical`` and
``success_before_passing``.

Rules:
- A check has no state until its first result; that first result sets the state directly,
  so a node leaves ``starting`` after one round of checks instead of N.
- After that, a passing check turns failing only after ``fail_after`` consecutive failed
  results, and a failing check turns passing only after ``pass_after`` consecutive passes.
- The consecutive counters run regardless of state: a critical check triggers shutdown on
  ``consecutive_failures`` (see ``mesh.status.shutdown_reason``), never on one bad result.
- A warning result (``CheckResult.warning``) is a failure like any other for the state,
  but it neither counts towards shutdown nor resets the count: ``plain_failures`` counts
  the ordinary failures since the last pass, across warnings. So a node that warned for an
  hour is not shut down by its first ordinary failure, and a warning slipped in between
  (a stranger's connection, whose mere presence makes the PubSub probe warn) cannot keep a
  broken node from its shutdown either.

Pure code: the manager feeds results in and gets the new state and any transition back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class CheckState(StrEnum):
    PENDING = "pending"  # no result yet
    PASSING = "passing"
    FAILING = "failing"


@dataclass(frozen=True, slots=True)
class FlapState:
    state: CheckState = CheckState.PENDING
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    ever_passed: bool = False  # whether any result of this check has passed since start
    # Failures since the last pass that were not warnings: the ones shutdown counts.
    plain_failures: int = 0
    last_warning: bool = False  # whether the latest result was a warning

    @property
    def warning(self) -> bool:
        """Whether the latest result was a (failed) warning."""
        return self.last_warning and self.consecutive_failures > 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    fail_after: int = 3  # the reference's MaxFailedProbes
    pass_after: int = 2

    def __post_init__(self) -> None:
        if self.fail_after < 1 or self.pass_after < 1:
            raise ValueError("flap thresholds must be at least 1")


def observe(
    current: FlapState, healthy: bool, limits: Thresholds, *, warning: bool = False
) -> FlapState:
    """The flap state after one more result; ``warning`` only matters when not healthy."""
    if healthy:
        counted = replace(
            current,
            consecutive_failures=0,
            consecutive_successes=current.consecutive_successes + 1,
            ever_passed=True,
            plain_failures=0,
            last_warning=False,
        )
        if current.state is CheckState.PENDING:
            return replace(counted, state=CheckState.PASSING)
        if (
            current.state is CheckState.FAILING
            and counted.consecutive_successes >= limits.pass_after
        ):
            return replace(counted, state=CheckState.PASSING)
        return counted
    failures = current.consecutive_failures + 1
    counted = replace(
        current,
        consecutive_successes=0,
        consecutive_failures=failures,
        plain_failures=current.plain_failures + (0 if warning else 1),
        last_warning=warning,
    )
    if current.state is CheckState.PENDING:
        return replace(counted, state=CheckState.FAILING)
    if current.state is CheckState.PASSING and counted.consecutive_failures >= limits.fail_after:
        return replace(counted, state=CheckState.FAILING)
    return counted
