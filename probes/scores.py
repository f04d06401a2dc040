"""The enhanced checks' score rules: pure functions of values, each in [0, 1].

A check's pass/fail is this run's outcome only: the manager's flap control already needs
3 failures in a row before a check turns failing, and a pass/fail on a success-rate window
would keep a recovered node failing (and, for a critical check, shut it down) until the
window flushed. History goes into the score instead. Scores, each in [0, 1] and reported as
``details["score"]`` so ``mesh.score`` uses them (``clamp`` limits to [0, 1]):

- probe score (pubsub, dht) = success_rate x latency_factor x failure_factor
  - success_rate   = successful probes / probes, over the last ``success_window`` probes
  - latency_factor = 1 - 0.5 x clamp(latency / probe_timeout), latency of the last success:
    an answer at the deadline halves the score
  - failure_factor = clamp(1 - consecutive_failures / max_failed_probes): 0 after 3 in a row
- dht score = probe score x (0.5 + 0.5 x replicas_found / peers_asked) of the last probe
  (the last factor is 1 when the probe asked nobody or did not finish)
- connectivity = 1 if min_peers == 0, else min(1, connected_peers / min_peers)
- replication = min(1, mean replicas found per record / expected), expected =
  min(k = 20, the probe's replicas (3), routing-table peers we are connected to): the
  reference's min(k, N - 1) for records that go to 3 peers, not to all k
- tasks = success_rate x min(1, capacity / max(1, active + queued)); success_rate is 1 with
  no completed task, the load factor is 1 when capacity is 0 (unknown)

The summary bands the overall score into a status (:mod:`probes.summary`).
"""

from __future__ import annotations

from collections import deque

from mesh.model import Status
from probes.health_config import HealthConfig
from probes.task_source import TaskStats

__all__ = [
    "ProbeTracker",
    "connectivity_score",
    "failure_factor",
    "latency_factor",
    "probe_score",
    "replication_score",
    "score_status",
    "task_score",
]


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def latency_factor(latency: float | None, timeout: float) -> float:
    if latency is None:
        return 1.0  # nothing measured: the success rate and failure factor speak
    return 1.0 - 0.5 * _clamp(latency / timeout)


def failure_factor(consecutive_failures: int, max_failed: int) -> float:
    return _clamp(1.0 - consecutive_failures / max_failed)


def probe_score(
    success_rate: float,
    latency: float | None,
    timeout: float,
    consecutive_failures: int,
    max_failed: int,
) -> float:
    return (
        _clamp(success_rate)
        * latency_factor(latency, timeout)
        * failure_factor(consecutive_failures, max_failed)
    )


def connectivity_score(connected: int, min_peers: int) -> float:
    return 1.0 if min_peers <= 0 else min(1.0, connected / min_peers)


def replication_score(mean_found: float, expected: int) -> float:
    return 1.0 if expected <= 0 else _clamp(mean_found / expected)


def score_status(score: float, config: HealthConfig) -> Status:
    if score >= config.healthy_threshold:
        return Status.HEALTHY
    if score >= config.degraded_threshold:
        return Status.DEGRADED
    return Status.UNHEALTHY


class ProbeTracker:
    """Success rate over the last ``window`` probes, consecutive failures, last latency."""

    def __init__(self, window: int) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)
        self.consecutive_failures = 0
        self.last_success: float | None = None  # Unix seconds
        self.last_latency: float | None = None  # seconds, of the last success

    def record(self, ok: bool, latency: float | None, at: float) -> None:
        self._outcomes.append(ok)
        if ok:
            self.consecutive_failures = 0
            self.last_success = at
            self.last_latency = latency
        else:
            self.consecutive_failures += 1

    @property
    def probes(self) -> int:
        return len(self._outcomes)

    @property
    def success_rate(self) -> float:
        """Successes over probes in the window; 1.0 before the first probe."""
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else 1.0

    def score(self, timeout: float, max_failed: int) -> float:
        return probe_score(
            self.success_rate, self.last_latency, timeout, self.consecutive_failures, max_failed
        )


def task_score(stats: TaskStats) -> float:
    load = 1.0
    if stats.capacity > 0:
        load = min(1.0, stats.capacity / max(1, stats.active + stats.queued))
    return _clamp(stats.success_rate) * load
