"""The health model of the reference document ("Core Types"), in Python.

Times are plain floats: intervals, timeouts and latencies in seconds, timestamps as Unix
seconds. The JSON forms the reference shows (nanosecond integers, RFC 3339) are produced at
the edge, in ``mesh.wire_json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Defaults from the reference's HealthCheck type.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0


class Status(StrEnum):
    """Overall node status; the string values are the reference's."""

    HEALTHY = "healthy"  # all checks passing
    DEGRADED = "degraded"  # some non-critical checks failing
    UNHEALTHY = "unhealthy"  # a critical check failing
    STARTING = "starting"  # not every enabled check has a result yet
    STOPPING = "stopping"  # graceful shutdown in progress

    @property
    def serving(self) -> bool:
        """Ready for traffic: HTTP 200 on /health and /health/ready."""
        return self in (Status.HEALTHY, Status.DEGRADED)


class FailureReason(StrEnum):
    """Why a check run failed, as the manager saw it: a small fixed set, fit for a metric
    label. The reference labels its failure counter with ``err.Error()``; free text (a
    peer's address, an errno message, whatever a peer sent) would make one series per
    distinct text, and a peer could mint series at will."""

    UNHEALTHY = "unhealthy"  # the checker ran and reported failure
    TIMEOUT = "timeout"  # it did not finish within its timeout
    EXCEPTION = "exception"  # it raised
    INVALID_RESULT = "invalid_result"  # it returned something other than a CheckResult


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one check: checkers fill ``healthy`` and ``message``, the manager the rest."""

    healthy: bool
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    latency: float = 0.0  # seconds the checker took
    timestamp: float = 0.0  # Unix seconds when the result was taken
    error: str | None = None  # the error's text when the check failed with one
    # A failed result that is not the node's fault, e.g. the PubSub probe of a node whose
    # only peers are not mesh nodes: nothing was proven, so it cannot pass, yet nothing is
    # broken either. It rolls up as degraded even on a critical check and never counts
    # towards shutdown (``mesh.status``). Ignored on a healthy result.
    warning: bool = False

    @classmethod
    def ok(cls, message: str, **details: Any) -> CheckResult:
        return cls(healthy=True, message=message, details=details)

    @classmethod
    def fail(cls, message: str, *, error: str | None = None, **details: Any) -> CheckResult:
        return cls(healthy=False, message=message, details=details, error=error)

    @classmethod
    def warn(cls, message: str, **details: Any) -> CheckResult:
        """A failed result that only warns (see ``warning``)."""
        return cls(healthy=False, message=message, details=details, warning=True)


# A checker is an async callable with no arguments: cancellation and the timeout come from
# the trio cancel scope the manager puts around it (the Go version's ``ctx``). It should
# return a CheckResult; anything else is turned into a failed result by the manager.
Checker = Callable[[], Awaitable[object]]


@dataclass(eq=False)
class HealthCheck:
    """A registered check (the reference's ``HealthCheck``).

    ``component`` names the score component the check feeds (``chorus_component_health_score``);
    by default each check is its own component.
    """

    name: str
    checker: Checker
    description: str = ""
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    enabled: bool = True
    critical: bool = False
    component: str | None = None
    # Seconds between the manager starting and this check's first run. Network probes wait
    # for the node's first connections rather than failing their first run by design.
    start_delay: float = 0.0
    last_run: float | None = None
    last_result: CheckResult | None = None

    @property
    def component_name(self) -> str:
        return self.component or self.name


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """The rolled-up status of the node (the reference's ``SystemStatus``)."""

    status: Status
    message: str
    checks: Mapping[str, CheckResult]
    uptime: float  # seconds
    start_time: float  # Unix seconds
    last_update: float  # Unix seconds
    version: str
    node_id: str
