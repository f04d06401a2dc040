"""The reference's Health Summary: the manager's status, banded by the score.

The summary's status is the worse of the manager's status and the score band: score >=
healthy_threshold (0.95) healthy, >= degraded_threshold (0.75) degraded, else unhealthy;
``starting`` and ``stopping`` pass through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mesh.manager import CheckManager
from mesh.model import Status
from mesh.timefmt import go_duration, rfc3339
from probes.health_config import HealthConfig
from probes.health_metrics import HealthMetrics
from probes.scores import score_status

if TYPE_CHECKING:
    from probes.enhanced import EnhancedHealthChecks

__all__ = ["build_summary", "health_summary"]

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
