"""How check states roll up into the node's status, and when a critical check ends the node.

The rules, in order (first match wins):
1. ``stopping`` once shutdown has begun, whatever the checks say.
2. ``starting`` while any enabled check has no result yet.
3. ``unhealthy`` when any enabled critical check is failing, and its latest result was
   not a warning.
4. ``degraded`` when only enabled non-critical checks, or critical ones whose latest result
   was a warning (``CheckResult.warning``: failed, but not the node's fault), are failing.
5. ``healthy`` otherwise (every enabled check passing, or none registered).

"Failing" is the flap-controlled state of ``mesh.flap``, not the last raw result. Disabled
checks never count.

Shutdown: a critical check triggers a graceful shutdown only once it has failed
``shutdown_after`` times in a row (the reference's MaxFailedProbes, 3 by default), so one
transient failure never stops a node; warning results do not count, nor do they reset
the count (``FlapState.plain_failures``). It must also have passed at least once since start:
shutdown is for a node that broke, while a node that never got going (the first node of a
cluster with no peers yet, a database not up yet) is already kept out of traffic by its
readiness, and restarting it would only loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mesh.flap import CheckState, FlapState
from mesh.model import Status


@dataclass(frozen=True, slots=True)
class CheckView:
    """What the status rules need to know of one check."""

    name: str
    enabled: bool
    critical: bool
    flap: FlapState


def decide_status(stopping: bool, checks: Iterable[CheckView]) -> tuple[Status, str]:
    """The node's status and a one-line message explaining it."""
    if stopping:
        return Status.STOPPING, "System is shutting down"
    enabled = [c for c in checks if c.enabled]
    pending = sorted(c.name for c in enabled if c.flap.state is CheckState.PENDING)
    if pending:
        return Status.STARTING, f"Waiting for first results: {', '.join(pending)}"
    failing = [c for c in enabled if c.flap.state is CheckState.FAILING]
    critical = sorted(c.name for c in failing if c.critical and not c.flap.warning)
    if critical:
        return Status.UNHEALTHY, f"Critical checks failing: {', '.join(critical)}"
    warned = sorted(c.name for c in failing if c.critical)
    plain = sorted(c.name for c in failing if not c.critical)
    parts = [f"Non-critical checks failing: {', '.join(plain)}"] if plain else []
    if warned:
        parts.append(f"{'c' if parts else 'C'}ritical checks warning: {', '.join(warned)}")
    if parts:
        return Status.DEGRADED, "; ".join(parts)
    return Status.HEALTHY, "All health checks passing"


def shutdown_reason(checks: Iterable[CheckView], shutdown_after: int) -> str | None:
    """Why the node should shut down, or None. Only enabled critical checks can end a node."""
    for check in checks:
        if (
            check.enabled
            and check.critical
            and check.flap.ever_passed
            and check.flap.plain_failures >= shutdown_after
        ):
            flap = check.flap
            streak = (
                "in a row"
                if flap.plain_failures == flap.consecutive_failures
                else ("since it last passed, warnings between")
            )
            return f"critical check {check.name!r} failed {flap.plain_failures} times {streak}"
    return None
