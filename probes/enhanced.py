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

A check's pass/fail is this run's outcome only; history goes into the score, whose rules
are in :mod:`probes.scores`. The configuration is :mod:`probes.health_config`, the metrics
kept up to date here :mod:`probes.health_metrics`, the task source
:mod:`probes.task_source`, and the summary :mod:`probes.summary`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import trio

from mesh.election import ELECTION_HEALTH
from mesh.manager import CheckManager, ResultEvent
from mesh.model import CheckResult, HealthCheck
from probes.dht_probe import DHTOutcome, DHTProbe, DHTProbeOutcome, ProbeRecord, read_from_peers
from probes.health_config import DEFAULT_CONFIG, HealthConfig
from probes.health_metrics import HealthMetrics, ReplicationStatus, note_election, note_resources
from probes.local import RESOURCE_HEALTH
from probes.pubsub_probe import PubSubProbe
from probes.scores import ProbeTracker, connectivity_score, replication_score, task_score
from probes.task_source import ManagerTaskSource, TaskSource

__all__ = [
    "DHT_ENHANCED",
    "P2P_CONNECTIVITY",
    "PUBSUB_ENHANCED",
    "REPLICATION_HEALTH",
    "TASK_MANAGER",
    "EnhancedHealthChecks",
]

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
                    description="Replicas of recent DHT probe records at the peers that took them",
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
            note_resources(m, event.result.details)
        elif event.check.name == ELECTION_HEALTH:
            note_election(m, event.result)

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
        records = probe.settled()[-REPLICATION_RECORDS:]
        if not records:
            await trio.lowlevel.checkpoint()
            return CheckResult.ok("no DHT probe records yet", records_checked=0)
        # A probe stores its record at probe.replicas peers (fewer in a smaller cluster);
        # each record is re-read from the peers that took it.
        expected = min(cfg.replication_k, probe.replicas, len(probe.candidate_peers()))
        if expected == 0:
            await trio.lowlevel.checkpoint()
            return CheckResult.ok(
                "no connected DHT peers: no replicas expected", records_checked=0, expected=0
            )
        found: list[int] = [0] * len(records)
        asked: set[str] = set()

        async def count(i: int) -> None:
            holders = records[i].holders
            sample = self._rng.sample(holders, min(len(holders), cfg.replication_sample))
            asked.update(sample)
            answers = await read_from_peers(probe.dht, records[i].key, sample, probe.peer_timeout)
            hits = sum(1 for value in answers.values() if value == records[i].value)
            found[i] = round(hits * len(holders) / len(sample)) if sample else 0

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
