"""Where the task-manager check reads its load: a small interface and the node's own.

``TaskSource`` is what CHORUS's own task manager can implement; ``ManagerTaskSource`` counts
the health node's own check runs as tasks. Its score is ``probes.scores.task_score``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from mesh.manager import CheckManager, ResultEvent
from mesh.model import HealthCheck

__all__ = ["ManagerTaskSource", "TaskSource", "TaskStats"]


@dataclass(frozen=True, slots=True)
class TaskStats:
    active: int  # running now
    queued: int  # waiting to run
    capacity: int  # how many may run at once; 0 = unknown
    succeeded: int  # completions in the source's recent window
    failed: int

    @property
    def success_rate(self) -> float:
        done = self.succeeded + self.failed
        return self.succeeded / done if done else 1.0


class TaskSource(Protocol):
    """Whatever runs the node's work; CHORUS's own task manager can plug in here."""

    def task_stats(self) -> TaskStats: ...


class ManagerTaskSource:
    """The node's own probe scheduler as a task source: each check run is a task.

    The manager runs every check in its own task, so nothing ever queues (``queued`` is 0)
    and capacity is the number of enabled checks. A run is active from its start
    (``last_run``) until its result is stored; the manager stamps both with the same wall
    clock. Success rate is over the last ``window`` runs: a run succeeds when its checker
    completed (returned a result within its timeout, healthy or not). A probe that reports
    an isolated network did its job; one that hung or raised did not.
    """

    def __init__(
        self, manager: CheckManager, *, window: int = 100, exclude: Collection[str] = ()
    ) -> None:
        self._manager = manager
        self._exclude = frozenset(exclude)  # the task-manager check does not count itself
        self._results: deque[bool] = deque(maxlen=window)
        manager.add_listener(self._on_result)

    def _on_result(self, event: ResultEvent) -> None:
        if event.check.name not in self._exclude:
            self._results.append(event.completed)

    def task_stats(self) -> TaskStats:
        checks = [c for c in self._manager.checks if c.enabled and c.name not in self._exclude]
        active = sum(1 for c in checks if _running(c))
        succeeded = sum(self._results)
        return TaskStats(
            active=active,
            queued=0,
            capacity=len(checks),
            succeeded=succeeded,
            failed=len(self._results) - succeeded,
        )


def _running(check: HealthCheck) -> bool:
    if check.last_run is None:
        return False
    return check.last_result is None or check.last_result.timestamp < check.last_run
