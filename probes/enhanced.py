"""The reference's Enhanced Health Checks: probes with history, scores and a summary.

Checks (reference, "Enhanced Health Checks Registered"); resource-health lives in
``probes.local`` and election-health belongs to the election work, so neither is here:

=================== ======== ======== =========== =========================================
name                critical interval component  healthy when
=================== ======== ======== =========== =========================================
pubsub-enhanced     yes (*)  30 s     pubsub      this PubSub probe got a correct answer;
                                                  a warning (degraded) when no connected
                                                  peer is a mesh node (pubsub_probe)
dht-enhanced        yes (*)  60 s     dht         this DHT probe succeeded (see dht_probe)
p2p-connectivity    yes (*)  30 s     p2p         connected peers >= min_peers
replication-health  no       120 s    replication replication ratio >= degraded_threshold
task-manager        no       30 s     tasks       success rate >= degraded_threshold and
                                                  active + queued <= capacity
=================== ======== ======== =========== =========================================

(*) ``HealthConfig.critical_network_checks``; True as in the reference. An isolated node
fails all three, and the manager requests shutdown after ``MaxFailedProbes`` (3)
consecutive failures of a critical check: right for a node cut off from a real cluster,
fatal for a one-node devnet. ``DEVNET`` turns them non-critical and min_peers to 0.

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
  min(k = 20, routing-table peers we are connected to): the reference's min(k, N - 1)
- tasks = success_rate x min(1, capacity / max(1, active + queued)); success_rate is 1 with
  no completed task, the load factor is 1 when capacity is 0 (unknown)

The summary's status is the worse of the manager's status and the score band: score >=
healthy_threshold (0.95) healthy, >= degraded_threshold (0.75) degraded, else unhealthy;
``starting`` and ``stopping`` pass through.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import trio

from mesh.election import ELECTION_HEALTH
from mesh.manager import CheckManager, ResultEvent
from mesh.model import CheckResult, HealthCheck, Status
from mesh.timefmt import go_duration, rfc3339
from probes.dht_probe import DHTOutcome, DHTProbe, DHTProbeOutcome, ProbeRecord, read_from_peers
from probes.local import RESOURCE_HEALTH
from probes.pubsub_probe import PubSubProbe

__all__ = [
    "DEFAULT_CONFIG",
    "DEVNET_CONFIG",
    "EnhancedHealthChecks",
    "HealthConfig",
    "HealthMetrics",
    "ManagerTaskSource",
    "ProbeTracker",
    "ReplicationStatus",
    "TaskSource",
    "TaskStats",
    "build_summary",
    "connectivity_score",
    "failure_factor",
    "health_summary",
    "latency_factor",
    "probe_score",
    "replication_score",
    "score_status",
    "task_score",
]

logger = logging.getLogger(__name__)

PUBSUB_ENHANCED = "pubsub-enhanced"
DHT_ENHANCED = "dht-enhanced"
P2P_CONNECTIVITY = "p2p-connectivity"
REPLICATION_HEALTH = "replication-health"
TASK_MANAGER = "task-manager"

# A check's timeout is its probe's own bound plus this, so the probe's specific message
# ("no answer from 3 named peers within 10s") wins over the manager's generic timeout.
TIMEOUT_MARGIN = 5.0
LOCAL_CHECK_TIMEOUT = 5.0  # p2p-connectivity and task-manager only read local state
REPLICATION_RECORDS = 3  # most recent probe records re-read per replication check


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class HealthConfig:
    """The reference's HealthConfig (times in seconds), plus the knobs it leaves implicit."""

    # Reference defaults. Shorter intervals notice trouble sooner and cost a publish or a
    # DHT put per run; each probe's cost is bounded (k answers, <= 5 DHT reads).
    pubsub_probe_interval: float = 30.0
    dht_probe_interval: float = 60.0
    # The election-health check's (adapters.gossip builds it; adapters.node registers it
    # with these, or not at all when enable_election_probes is off).
    election_probe_interval: float = 15.0
    # How long a probe may take: the PubSub probe's wait for answers, the DHT probe's
    # whole put-and-read-back.
    pubsub_probe_timeout: float = 10.0
    dht_probe_timeout: float = 20.0
    election_probe_timeout: float = 5.0
    max_failed_probes: int = 3  # consecutive failures that take failure_factor to 0
    healthy_threshold: float = 0.95  # summary score bands
    degraded_threshold: float = 0.75  # also the pass mark of replication and tasks
    # Bounds the per-key replication status kept in HealthMetrics. The manager keeps its
    # own transition history with the same default.
    max_history_entries: int = 1000
    history_cleanup_interval: float = 3600.0  # unused: every window here is bounded
    enable_pubsub_probes: bool = True
    enable_dht_probes: bool = True
    enable_election_probes: bool = True
    enable_replication_probes: bool = True

    # Ours. The reference's example uses min_peers 3; 1 suits the small clusters we run
    # (a node with one live peer can still gossip), and 0 disables the requirement.
    min_peers: int = 1
    # Probes in the success-rate window: 20 is 10 min of PubSub probes at 30 s. Longer
    # remembers more, recovers slower.
    success_window: int = 20
    replication_k: int = 20  # Kademlia's k: copies a record should have at most
    # Peers the replication check asks (of the min(k, connected) expected to hold a copy);
    # the replicas found among them are scaled up to that expected count. Asking all of
    # them made the check O(N) per node: at 20 nodes with 15 s probes it alone was 57
    # reads a node every 15 s and the devnet never converged on two cores (2026-11-28).
    replication_sample: int = 5
    p2p_interval: float = 30.0
    replication_interval: float = 120.0
    task_interval: float = 30.0
    # The reference makes pubsub-enhanced, dht-enhanced and p2p-connectivity critical. A
    # one-node devnet fails them all, and critical failures end the node.
    critical_network_checks: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_interval", "_timeout")) and not value > 0:
                raise ValueError(f"{f.name} must be a positive number of seconds, got {value!r}")
        if not 0.0 <= self.degraded_threshold <= self.healthy_threshold <= 1.0:
            raise ValueError("need 0 <= degraded_threshold <= healthy_threshold <= 1")
        if min(self.max_failed_probes, self.success_window, self.replication_k) < 1 or (
            self.replication_sample < 1
        ):
            raise ValueError(
                "max_failed_probes, success_window, replication_k and replication_sample"
                " must be >= 1"
            )
        if self.min_peers < 0 or self.max_history_entries < 1:
            raise ValueError("min_peers must be >= 0 and max_history_entries >= 1")


DEFAULT_CONFIG = HealthConfig()
# One to a few nodes on one machine: nothing to be cut off from, so isolation degrades the
# node instead of ending it, and probes run often enough to watch them work.
DEVNET_CONFIG = replace(
    DEFAULT_CONFIG,
    pubsub_probe_interval=10.0,
    dht_probe_interval=15.0,
    min_peers=0,
    critical_network_checks=False,
)


# ------------------------------------------------------------------- score rules


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


# ------------------------------------------------------------------------- tasks


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


def task_score(stats: TaskStats) -> float:
    load = 1.0
    if stats.capacity > 0:
        load = min(1.0, stats.capacity / max(1, stats.active + stats.queued))
    return _clamp(stats.success_rate) * load


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


# ----------------------------------------------------------------------- metrics


@dataclass
class ReplicationStatus:
    key: str
    replicas_found: int
    expected: int
    last_checked: float  # Unix seconds


@dataclass
class HealthMetrics:
    """The reference's HealthMetrics. Times: Unix seconds; durations: seconds. None means
    not measured yet. The election fields come from the latest ``election-health`` result
    (``adapters.gossip.election_result``), so they stay unset while that check is disabled
    or has not run."""

    system_health_score: float = 0.0
    last_full_health_check: float | None = None  # time of the latest result of any check
    total_health_checks: int = 0
    failed_health_checks: int = 0

    pubsub_health_score: float | None = None
    pubsub_probe_latency: float | None = None
    pubsub_success_rate: float | None = None
    pubsub_last_success: float | None = None
    pubsub_consecutive_fails: int = 0

    dht_health_score: float | None = None
    dht_probe_latency: float | None = None
    dht_success_rate: float | None = None
    dht_last_success: float | None = None
    dht_consecutive_fails: int = 0
    dht_replication_status: dict[str, ReplicationStatus] = field(default_factory=dict)

    election_health_score: float | None = None
    election_stability: float | None = None
    # Seconds since this node last heard the admin's digest: the admin's heartbeat in a
    # mesh that elects by view rather than by message (mesh.election).
    heartbeat_latency: float | None = None
    leadership_changes: int = 0  # since this node started observing
    last_leadership_change: float | None = None
    admin_uptime: float | None = None  # None: no admin

    p2p_connected_peers: int = 0
    p2p_connectivity_score: float | None = None
    # The PubSub probe's round trip (one publish out, one direct stream back): the closest
    # thing to a network latency this node measures.
    network_latency: float | None = None

    cpu_usage: float | None = None
    memory_usage: float | None = None
    disk_usage: float | None = None

    active_tasks: int = 0
    queued_tasks: int = 0
    task_success_rate: float | None = None


# ------------------------------------------------------------------------ checks


class EnhancedHealthChecks:
    """Builds the enhanced checks and keeps ``metrics`` up to date.

    ``attach(manager)`` registers the enabled checks and a result listener (totals,
    resource usage, system score) and, unless a ``tasks`` source was given, uses the
    manager's own scheduler as the task source. Checks whose input is missing (no probe,
    no task source) are not built.
    """

    def __init__(
        self,
        config: HealthConfig = DEFAULT_CONFIG,
        *,
        connected_peers: Callable[[], Sequence[str]],
        pubsub_probe: PubSubProbe | None = None,
        dht_probe: DHTProbe | None = None,
        tasks: TaskSource | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = HealthMetrics()
        self._connected = connected_peers
        self.pubsub_probe = pubsub_probe
        self.dht_probe = dht_probe
        self.tasks = tasks
        self._rng = rng or random.Random()
        self._wall = wall_clock
        self.pubsub_tracker = ProbeTracker(config.success_window)
        self.dht_tracker = ProbeTracker(config.success_window)
        self._manager: CheckManager | None = None

    # -- wiring ------------------------------------------------------------------------

    def attach(self, manager: CheckManager) -> list[HealthCheck]:
        """Register the checks and the listener with ``manager``; returns the checks."""
        if self.tasks is None:
            self.tasks = ManagerTaskSource(manager, exclude=(TASK_MANAGER,))
        self._manager = manager
        manager.add_listener(self._on_result)
        checks = self.checks()
        for check in checks:
            manager.register(check)
        return checks

    def checks(self) -> list[HealthCheck]:
        cfg = self.config
        critical = cfg.critical_network_checks
        out: list[HealthCheck] = []
        if self.pubsub_probe is not None and cfg.enable_pubsub_probes:
            out.append(
                HealthCheck(
                    name=PUBSUB_ENHANCED,
                    checker=self.check_pubsub,
                    description="PubSub probe answered by peers, with success rate and score",
                    interval=cfg.pubsub_probe_interval,
                    timeout=cfg.pubsub_probe_timeout + TIMEOUT_MARGIN,
                    critical=critical,
                    component="pubsub",
                )
            )
        if self.dht_probe is not None and cfg.enable_dht_probes:
            out.append(
                HealthCheck(
                    name=DHT_ENHANCED,
                    checker=self.check_dht,
                    description="DHT put and read-back from peers, with success rate and score",
                    interval=cfg.dht_probe_interval,
                    timeout=cfg.dht_probe_timeout + TIMEOUT_MARGIN,
                    critical=critical,
                    component="dht",
                )
            )
        out.append(
            HealthCheck(
                name=P2P_CONNECTIVITY,
                checker=self.check_p2p,
                description=f"At least {cfg.min_peers} connected peer(s)",
                interval=cfg.p2p_interval,
                timeout=LOCAL_CHECK_TIMEOUT,
                critical=critical,
                component="p2p",
            )
        )
        if self.dht_probe is not None and cfg.enable_replication_probes:
            out.append(
                HealthCheck(
                    name=REPLICATION_HEALTH,
                    checker=self.check_replication,
                    description="Replicas of recent DHT probe records against min(k, N-1)",
                    interval=cfg.replication_interval,
                    # Reads run concurrently, each bounded by the probe's peer timeout.
                    timeout=self.dht_probe.peer_timeout + TIMEOUT_MARGIN,
                    critical=False,
                    component="replication",
                )
            )
        if self.tasks is not None:
            out.append(
                HealthCheck(
                    name=TASK_MANAGER,
                    checker=self.check_tasks,
                    description="Active and queued tasks, success rate and capacity",
                    interval=cfg.task_interval,
                    timeout=LOCAL_CHECK_TIMEOUT,
                    critical=False,
                    component="tasks",
                )
            )
        return out

    def _on_result(self, event: ResultEvent) -> None:
        m = self.metrics
        m.total_health_checks += 1
        if not event.result.healthy:
            m.failed_health_checks += 1
        m.last_full_health_check = event.result.timestamp
        if self._manager is not None:
            m.system_health_score = self._manager.system_score()
        if event.check.name == RESOURCE_HEALTH and event.result.details:
            details = event.result.details
            m.cpu_usage = _fraction(details.get("cpu"))
            m.memory_usage = _fraction(details.get("memory"))
            m.disk_usage = _fraction(details.get("disk"))
        elif event.check.name == ELECTION_HEALTH:
            _note_election(m, event.result)

    # -- checkers ----------------------------------------------------------------------

    async def check_pubsub(self) -> CheckResult:
        assert self.pubsub_probe is not None
        cfg, tracker, m = self.config, self.pubsub_tracker, self.metrics
        outcome = await self.pubsub_probe.run(wait=cfg.pubsub_probe_timeout)
        tracker.record(outcome.healthy, outcome.latency, self._wall())
        score = tracker.score(cfg.pubsub_probe_timeout, cfg.max_failed_probes)
        m.pubsub_health_score = score
        m.pubsub_success_rate = tracker.success_rate
        m.pubsub_consecutive_fails = tracker.consecutive_failures
        m.pubsub_last_success = tracker.last_success
        m.pubsub_probe_latency = tracker.last_latency
        m.network_latency = tracker.last_latency
        # The outcome's own verdict, a warning included (only non-mesh peers: degraded,
        # not unhealthy, see ProbeOutcome.result). The tracker counts it as a failure all
        # the same: nothing was proven, and the score says so.
        return replace(
            outcome.result(),
            message=f"{outcome.message} (success rate {tracker.success_rate:.0%})",
            details={**outcome.details(), **_tracker_details(tracker, score)},
        )

    async def check_dht(self) -> CheckResult:
        assert self.dht_probe is not None
        cfg, tracker, m = self.config, self.dht_tracker, self.metrics
        outcome: DHTProbeOutcome | None = None
        with trio.move_on_after(cfg.dht_probe_timeout):
            outcome = await self.dht_probe.run()
        if outcome is None:
            ok, latency, replication = False, None, 1.0
            message = f"DHT probe did not finish within {cfg.dht_probe_timeout:g}s"
            details: dict[str, Any] = {"outcome": str(DHTOutcome.FAILURE)}
        else:
            ok, latency = outcome.healthy, outcome.latency
            message, details = outcome.message, outcome.details()
            asked = len(outcome.peers_asked)
            replication = len(outcome.replicas) / asked if asked else 1.0
        tracker.record(ok, latency, self._wall())
        score = tracker.score(cfg.dht_probe_timeout, cfg.max_failed_probes) * (
            0.5 + 0.5 * replication
        )
        m.dht_health_score = score
        m.dht_success_rate = tracker.success_rate
        m.dht_consecutive_fails = tracker.consecutive_failures
        m.dht_last_success = tracker.last_success
        m.dht_probe_latency = tracker.last_latency
        return CheckResult(
            healthy=ok,
            message=f"{message} (success rate {tracker.success_rate:.0%})",
            details={**details, **_tracker_details(tracker, score)},
            error=None if ok else details["outcome"],
        )

    async def check_p2p(self) -> CheckResult:
        await trio.lowlevel.checkpoint()
        min_peers = self.config.min_peers
        connected = len(self._connected())
        score = connectivity_score(connected, min_peers)
        self.metrics.p2p_connected_peers = connected
        self.metrics.p2p_connectivity_score = score
        details: dict[str, Any] = {
            "connected_peers": connected,
            "min_peers": min_peers,
            "score": score,
        }
        if connected < min_peers:
            return CheckResult.fail(
                f"{connected} connected peer(s), need at least {min_peers}", **details
            )
        return CheckResult.ok(f"{connected} connected peer(s)", **details)

    async def check_replication(self) -> CheckResult:
        assert self.dht_probe is not None
        probe, cfg = self.dht_probe, self.config
        records = list(probe.recent)[-REPLICATION_RECORDS:]
        if not records:
            await trio.lowlevel.checkpoint()
            return CheckResult.ok("no DHT probe records yet", records_checked=0)
        peers = probe.candidate_peers()
        expected = min(cfg.replication_k, len(peers))
        if expected == 0:
            await trio.lowlevel.checkpoint()
            return CheckResult.ok(
                "no connected DHT peers: no replicas expected", records_checked=0, expected=0
            )
        asked = self._rng.sample(peers, min(expected, cfg.replication_sample))
        found: list[int] = [0] * len(records)

        async def count(i: int) -> None:
            answers = await read_from_peers(probe.dht, records[i].key, asked, probe.peer_timeout)
            hits = sum(1 for value in answers.values() if value == records[i].value)
            found[i] = round(hits * expected / len(asked))

        async with trio.open_nursery() as nursery:
            for i in range(len(records)):
                nursery.start_soon(count, i)
        self._note_replication(records, found, expected)
        mean_found = sum(found) / len(found)
        score = replication_score(mean_found, expected)
        details: dict[str, Any] = {
            "records_checked": len(records),
            "replicas_found": found,
            "expected": expected,
            "peers_asked": len(asked),
            "replication_factor": mean_found,
            "score": score,
        }
        text = (
            f"mean replication {mean_found:.1f} of {expected} expected over"
            f" {len(records)} recent record(s)"
        )
        if score < cfg.degraded_threshold:
            return CheckResult.fail(f"low replication: {text}", **details)
        return CheckResult.ok(text, **details)

    def _note_replication(
        self, records: Sequence[ProbeRecord], found: list[int], expected: int
    ) -> None:
        status = self.metrics.dht_replication_status
        now = self._wall()
        for record, n in zip(records, found, strict=True):
            status.pop(record.key, None)  # re-insert: the dict's order is recency
            status[record.key] = ReplicationStatus(record.key, n, expected, now)
        while len(status) > self.config.max_history_entries:
            del status[next(iter(status))]

    async def check_tasks(self) -> CheckResult:
        assert self.tasks is not None
        await trio.lowlevel.checkpoint()
        stats = self.tasks.task_stats()
        score = task_score(stats)
        m = self.metrics
        m.active_tasks, m.queued_tasks = stats.active, stats.queued
        m.task_success_rate = stats.success_rate
        details: dict[str, Any] = {
            **dataclasses.asdict(stats),
            "success_rate": stats.success_rate,
            "score": score,
        }
        text = (
            f"{stats.active} active, {stats.queued} queued, capacity {stats.capacity},"
            f" success rate {stats.success_rate:.0%}"
        )
        overloaded = stats.capacity > 0 and stats.active + stats.queued > stats.capacity
        if overloaded or stats.success_rate < self.config.degraded_threshold:
            return CheckResult.fail(f"task manager unhealthy: {text}", **details)
        return CheckResult.ok(text, **details)


def _tracker_details(tracker: ProbeTracker, score: float) -> dict[str, Any]:
    return {
        "success_rate": tracker.success_rate,
        "probes_in_window": tracker.probes,
        "consecutive_failures": tracker.consecutive_failures,
        "score": score,
    }


def _fraction(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _note_election(m: HealthMetrics, result: CheckResult) -> None:
    """Copy an election-health result's details into the election fields of ``m``."""
    details = result.details
    if "score" not in details:
        # Timed out or raised: no election state was read this time. The score follows
        # mesh.score's rule for a check without one; the last known state stays.
        m.election_health_score = 1.0 if result.healthy else 0.0
        return
    m.election_health_score = _fraction(details.get("score"))
    m.election_stability = _fraction(details.get("stability"))
    # None (no admin) is a value here, not a gap: the summary must then say null.
    m.admin_uptime = _fraction(details.get("admin_uptime"))
    m.heartbeat_latency = _fraction(details.get("admin_heartbeat_age"))
    m.last_leadership_change = _fraction(details.get("last_leadership_change"))
    changes = details.get("leadership_changes")
    if isinstance(changes, int) and not isinstance(changes, bool):
        m.leadership_changes = changes


# ----------------------------------------------------------------------- summary

_SEVERITY = {Status.HEALTHY: 0, Status.DEGRADED: 1, Status.UNHEALTHY: 2}


def build_summary(
    *,
    status: Status,
    overall_score: float,
    component_scores: Mapping[str, float],
    metrics: HealthMetrics,
    config: HealthConfig,
) -> dict[str, Any]:
    """The reference's Health Summary, from values. ``status`` is the manager's."""
    if status in _SEVERITY:
        banded = score_status(overall_score, config)
        status = max(status, banded, key=_SEVERITY.__getitem__)
    return {
        "status": str(status),
        "overall_score": overall_score,
        "last_check": (
            None
            if metrics.last_full_health_check is None
            else rfc3339(metrics.last_full_health_check)
        ),
        "total_checks": metrics.total_health_checks,
        "component_scores": dict(component_scores),
        "key_metrics": {
            "connected_peers": metrics.p2p_connected_peers,
            "active_tasks": metrics.active_tasks,
            "admin_uptime": (
                None if metrics.admin_uptime is None else go_duration(metrics.admin_uptime)
            ),
            "leadership_changes": metrics.leadership_changes,
            "resource_utilization": {
                "cpu": metrics.cpu_usage,
                "memory": metrics.memory_usage,
                "disk": metrics.disk_usage,
            },
        },
    }


def health_summary(manager: CheckManager, enhanced: EnhancedHealthChecks) -> dict[str, Any]:
    """The reference's ``GetHealthSummary()``: reads both, does no I/O."""
    status, _ = manager.decide()
    return build_summary(
        status=status,
        overall_score=manager.system_score(),
        component_scores=manager.component_scores(),
        metrics=enhanced.metrics,
        config=enhanced.config,
    )
