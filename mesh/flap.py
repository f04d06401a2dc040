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
  but it excuses the failures of the streak so far: ``warned_through`` remembers how many,
  and only the failures after the latest warning (``unexcused_failures``) count towards
  shutdown. Otherwise a node that warned for an hour would be shut down by its first
  ordinary failure.

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
    # consecutive_failures up to and including the latest warning result; 0 without one.
    warned_through: int = 0

    @property
    def warning(self) -> bool:
        """Whether the latest result was a warning."""
        return self.consecutive_failures > 0 and self.warned_through == self.consecutive_failures

    @property
    def unexcused_failures(self) -> int:
        """Consecutive failures since the latest warning: the ones shutdown counts."""
        return self.consecutive_failures - self.warned_through


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
            warned_through=0,
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
        warned_through=failures if warning else current.warned_through,
    )
    if current.state is CheckState.PENDING:
        return replace(counted, state=CheckState.FAILING)
    if current.state is CheckState.PASSING and counted.consecutive_failures >= limits.fail_after:
        return replace(counted, state=CheckState.FAILING)
    return counted
