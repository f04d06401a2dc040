"""The reference's HealthMetrics, and how check results are copied into them.

``EnhancedHealthChecks`` (``probes.enhanced``) owns one and updates it as its checks run
and as the manager reports results; the summary (``probes.summary``) and the metrics
endpoint read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.model import CheckResult

__all__ = ["HealthMetrics", "ReplicationStatus", "note_election", "note_resources"]


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
    (``adapters.election_check.election_result``), so they stay unset while that check is
    disabled or has not run."""

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


def note_resources(m: HealthMetrics, details: Mapping[str, Any]) -> None:
    """Copy a resource-health result's usages (``probes.local``) into ``m``."""
    m.cpu_usage = _fraction(details.get("cpu"))
    m.memory_usage = _fraction(details.get("memory"))
    m.disk_usage = _fraction(details.get("disk"))


def note_election(m: HealthMetrics, result: CheckResult) -> None:
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


def _fraction(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
