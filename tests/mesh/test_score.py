from __future__ import annotations

import pytest

from mesh.flap import CheckState
from mesh.model import CheckResult
from mesh.score import ScoredCheck, check_score, component_scores, system_score

OK = CheckResult(True, "ok")
BAD = CheckResult(False, "bad")


def scored(
    component: str,
    state: CheckState,
    result: CheckResult | None = OK,
    critical: bool = False,
    enabled: bool = True,
) -> ScoredCheck:
    return ScoredCheck(component, critical, enabled, state, result)


@pytest.mark.parametrize(
    ("state", "result", "expected"),
    [
        (CheckState.PENDING, None, None),
        (CheckState.PASSING, OK, 1.0),
        (CheckState.FAILING, BAD, 0.0),
        # The flap-controlled state wins over a single raw result.
        (CheckState.PASSING, BAD, 1.0),
        (CheckState.PASSING, CheckResult(True, "", {"score": 0.8}), 0.8),
        (CheckState.PASSING, CheckResult(True, "", {"score": 7}), 1.0),  # clamped
        (CheckState.FAILING, CheckResult(False, "", {"score": -1}), 0.0),
        (CheckState.PASSING, CheckResult(True, "", {"score": float("nan")}), 1.0),
        (CheckState.PASSING, CheckResult(True, "", {"score": True}), 1.0),  # not a number
    ],
)
def test_check_score(state: CheckState, result: CheckResult | None, expected: float | None) -> None:
    assert check_score(state, result) == expected


def test_component_is_mean_of_its_checks() -> None:
    checks = [
        scored("disk", CheckState.PASSING),
        scored("disk", CheckState.FAILING, BAD),
        scored("mem", CheckState.PASSING),
        scored("x", CheckState.PENDING, None),
    ]
    assert component_scores(checks) == {"disk": 0.5, "mem": 1.0}


def test_system_score_weights_components() -> None:
    # p2p weighs 3 (table), "db" is critical and unlisted so weighs 2, "mem" weighs 1.
    checks = [
        scored("p2p", CheckState.FAILING, BAD),
        scored("db", CheckState.PASSING, critical=True),
        scored("mem", CheckState.PASSING),
    ]
    assert system_score(checks) == pytest.approx((0 * 3 + 1 * 2 + 1 * 1) / 6)


def test_system_score_edges() -> None:
    assert system_score([]) == 1.0
    assert system_score([scored("a", CheckState.PENDING, None)]) == 0.0
    assert system_score([scored("a", CheckState.FAILING, BAD, enabled=False)]) == 1.0
