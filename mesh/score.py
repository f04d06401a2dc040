"""Health scores: per check, per component, and for the whole node, each in [0, 1].

- A check's score is the ``score`` it reports in its details when it has one (the enhanced
  checks compute theirs from success rate, latency and so on); otherwise 1.0 while its
  flap-controlled state is passing and 0.0 while failing. Pending and disabled checks have
  no score.
- A component's score is the mean of its checks' scores.
- The system score is the weighted mean of the component scores. Weights come from
  ``COMPONENT_WEIGHTS``; a component not in the table weighs 2.0 if any of its checks is
  critical and 1.0 otherwise. With no scored component the system score is 1.0 (a node
  with nothing to check has nothing wrong), except while starting, when nothing is known
  and it is 0.0 (see ``system_score``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mesh.flap import CheckState
from mesh.model import CheckResult

# The network components dominate a health mesh: a node with no peers is useless however
# much disk it has. Relative weights for the reference's components; others fall back
# to the critical/non-critical rule above.
COMPONENT_WEIGHTS: Mapping[str, float] = {
    "p2p": 3.0,
    "pubsub": 2.0,
    "dht": 2.0,
    "election": 1.0,
    "replication": 1.0,
    "resources": 1.0,
    "tasks": 0.5,
}


@dataclass(frozen=True, slots=True)
class ScoredCheck:
    component: str
    critical: bool
    enabled: bool
    state: CheckState
    result: CheckResult | None


def check_score(state: CheckState, result: CheckResult | None) -> float | None:
    if state is CheckState.PENDING or result is None:
        return None
    reported = result.details.get("score") if result.details else None
    if isinstance(reported, int | float) and not isinstance(reported, bool):
        if math.isfinite(reported):
            return min(1.0, max(0.0, float(reported)))
    return 1.0 if state is CheckState.PASSING else 0.0


def component_scores(checks: Iterable[ScoredCheck]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for check in checks:
        if not check.enabled:
            continue
        score = check_score(check.state, check.result)
        if score is not None:
            sums.setdefault(check.component, []).append(score)
    return {name: sum(values) / len(values) for name, values in sorted(sums.items())}


def component_weight(component: str, critical: bool) -> float:
    return COMPONENT_WEIGHTS.get(component, 2.0 if critical else 1.0)


def system_score(checks: Iterable[ScoredCheck]) -> float:
    listed = [c for c in checks if c.enabled]
    scores = component_scores(listed)
    if not scores:
        return 0.0 if listed else 1.0
    critical = {c.component for c in listed if c.critical}
    weights = {name: component_weight(name, name in critical) for name in scores}
    total = sum(weights.values())
    return sum(scores[name] * weights[name] for name in scores) / total
