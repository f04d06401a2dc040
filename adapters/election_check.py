"""The election-health check: its result from the election tracker's health, and the check.

The admin is elected from the cluster view (``mesh.election``); this check reports whether
there is one and how stable leadership has been. Its details carry the election fields of
the reference's HealthMetrics, which ``probes.enhanced`` copies into its metrics and
summary. The gossip service builds it (``GossipService.election_check``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from mesh.cluster_view import ClusterView
from mesh.election import ELECTION_HEALTH, ElectionHealth, ElectionTracker
from mesh.model import CheckResult, HealthCheck

__all__ = [
    "ELECTION_CHECK",
    "ELECTION_COMPONENT",
    "ELECTION_INTERVAL",
    "ELECTION_TIMEOUT",
    "election_check",
    "election_result",
    "heartbeat_age",
]

# The reference's election-health check: non-critical, every 15 s, 5 s timeout.
ELECTION_CHECK = ELECTION_HEALTH
ELECTION_INTERVAL = 15.0
ELECTION_TIMEOUT = 5.0

# The score component the check feeds (mesh/component_table.py numbers it on the wire).
ELECTION_COMPONENT = "election"


def election_check(
    tracker: ElectionTracker,
    view: ClusterView,
    *,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
    interval: float = ELECTION_INTERVAL,
    timeout: float = ELECTION_TIMEOUT,
) -> HealthCheck:
    """The "election-health" check: non-critical, by default every 15 s with a 5 s
    timeout (the reference's ElectionProbeInterval and ElectionProbeTimeout). ``clock`` is
    the view's, ``wall_clock`` the tracker's (Unix seconds)."""

    async def check_election() -> CheckResult:
        await trio.lowlevel.checkpoint()
        health = tracker.health(wall_clock())
        return election_result(
            health, tracker.max_changes, heartbeat_age=heartbeat_age(view, health, clock())
        )

    return HealthCheck(
        name=ELECTION_CHECK,
        checker=check_election,
        description="An admin is elected from the cluster view and leadership is stable",
        interval=interval,
        timeout=timeout,
        critical=False,
        component=ELECTION_COMPONENT,
    )


def heartbeat_age(view: ClusterView, health: ElectionHealth, now: float) -> float | None:
    """Seconds since our view last accepted a statement from the admin: its digests are
    the admin's heartbeat here (the reference's election has a heartbeat of its own).
    ``now`` on the view's monotonic clock, so a stepped wall clock cannot distort it."""
    member = None if health.admin is None else view.member(health.admin)
    return None if member is None else max(0.0, now - member.last_heard)


def election_result(
    health: ElectionHealth, max_changes: int, *, heartbeat_age: float | None = None
) -> CheckResult:
    """The election-health check's result.

    Score: 0 without an admin; otherwise 0.5 + 0.5 * stability while leadership changed at
    most ``max_changes`` times in the window, 0.5 * stability beyond. The details carry
    every election field of the reference's HealthMetrics (seconds and Unix seconds);
    ``probes.enhanced`` copies them from here into its metrics and summary.
    """
    if health.admin is None:
        score = 0.0
        message = "No admin: no member is alive and healthy"
    else:
        base = 0.5 if health.changes_in_window <= max_changes else 0.0
        score = base + 0.5 * health.stability
        message = (
            f"Admin {health.admin}, {health.changes_in_window} leadership change(s) in the"
            f" window, stability {health.stability:.2f}"
        )
    return CheckResult(
        healthy=health.healthy,
        message=message,
        details={
            "admin": health.admin,
            "admin_uptime": health.admin_uptime,
            "leadership_changes": health.changes_total,
            "last_leadership_change": health.last_change,
            "admin_heartbeat_age": heartbeat_age,
            "changes_in_window": health.changes_in_window,
            "stability": health.stability,
            "score": score,
        },
    )
