"""The JSON bodies of the health endpoints, shaped as the reference document shows them.

Field names are the reference's (snake_case, as its Go structs' JSON tags print); latencies,
uptimes, intervals and timeouts are integer nanoseconds (Go's ``time.Duration``),
timestamps RFC 3339 in UTC, and the liveness uptime a Go duration string. Optional fields
(``details``, ``error``) are omitted when empty, like Go's ``omitempty``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mesh.flap import FlapState
from mesh.history import Transition
from mesh.model import CheckResult, HealthCheck, Status, SystemStatus
from mesh.timefmt import go_duration, rfc3339, to_nanos

JSON = dict[str, Any]


def result_json(result: CheckResult) -> JSON:
    body: JSON = {"healthy": result.healthy, "message": result.message}
    if result.details:
        body["details"] = json_safe(result.details)
    body["latency"] = to_nanos(result.latency)
    body["timestamp"] = rfc3339(result.timestamp)
    if result.error:
        body["error"] = result.error
    if result.warning and not result.healthy:
        body["warning"] = True  # omitted otherwise, like error
    return body


def health_json(status: SystemStatus) -> JSON:
    return {
        "status": str(status.status),
        "message": status.message,
        "checks": {name: result_json(r) for name, r in sorted(status.checks.items())},
        "uptime": to_nanos(status.uptime),
        "start_time": rfc3339(status.start_time),
        "last_update": rfc3339(status.last_update),
        "version": status.version,
        "node_id": status.node_id,
    }


def ready_json(status: Status, message: str) -> JSON:
    return {"ready": status.serving, "status": str(status), "message": message}


def live_json(status: Status, uptime: float) -> JSON:
    return {
        "live": status is not Status.STOPPING,
        "status": str(status),
        "uptime": go_duration(round(uptime)),
    }


def check_entry_json(check: HealthCheck, flap: FlapState) -> JSON:
    """One check in /health/checks: its last result plus how it is configured and where its
    flap control stands. A check that has not run yet has no result fields."""
    body: JSON = result_json(check.last_result) if check.last_result else {}
    body.update(
        description=check.description,
        enabled=check.enabled,
        critical=check.critical,
        interval=to_nanos(check.interval),
        timeout=to_nanos(check.timeout),
        last_run=rfc3339(check.last_run) if check.last_run is not None else None,
        state=str(flap.state),
        consecutive_failures=flap.consecutive_failures,
        consecutive_successes=flap.consecutive_successes,
    )
    return body


def transition_json(transition: Transition) -> JSON:
    return {
        "check": transition.check,
        "from": str(transition.from_state),
        "to": str(transition.to_state),
        "timestamp": rfc3339(transition.at),
        "message": transition.message,
        "consecutive": transition.consecutive,
    }


def json_safe(value: object, depth: int = 0) -> Any:
    """Check details come from arbitrary code: keep what JSON can carry, stringify the rest,
    so one odd detail never breaks an endpoint."""
    if depth > 8:
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)
