from __future__ import annotations

import pytest

from mesh.flap import CheckState, FlapState
from mesh.model import Status
from mesh.status import CheckView, decide_status, shutdown_reason

P = FlapState(CheckState.PASSING, 0, 1)
F = FlapState(CheckState.FAILING, 3, 0)
PEND = FlapState()
W = FlapState(CheckState.FAILING, 3, 0, last_warning=True)  # the latest result warned


def view(name: str, flap: FlapState, critical: bool = False, enabled: bool = True) -> CheckView:
    return CheckView(name, enabled, critical, flap)


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([], Status.HEALTHY),
        ([view("a", P), view("b", P, critical=True)], Status.HEALTHY),
        ([view("a", PEND), view("b", P)], Status.STARTING),
        ([view("a", PEND, critical=True), view("b", F, critical=True)], Status.STARTING),
        ([view("a", F), view("b", P, critical=True)], Status.DEGRADED),
        ([view("a", F), view("b", F, critical=True)], Status.UNHEALTHY),
        ([view("a", P), view("b", F, critical=True)], Status.UNHEALTHY),
        # A critical check whose latest result only warns degrades the node, no more.
        ([view("a", P), view("b", W, critical=True)], Status.DEGRADED),
        ([view("a", W, critical=True), view("b", F, critical=True)], Status.UNHEALTHY),
        # Disabled checks count for nothing, pending or failing.
        ([view("a", PEND, enabled=False), view("b", P)], Status.HEALTHY),
        ([view("a", F, critical=True, enabled=False), view("b", P)], Status.HEALTHY),
    ],
)
def test_status_rules(checks: list[CheckView], expected: Status) -> None:
    assert decide_status(False, checks)[0] is expected


def test_stopping_beats_everything() -> None:
    status, message = decide_status(True, [view("a", F, critical=True)])
    assert status is Status.STOPPING
    assert "shutting down" in message


def test_messages_name_the_checks() -> None:
    _, message = decide_status(False, [view("disk", F), view("db", F, critical=True)])
    assert message == "Critical checks failing: db"
    _, message = decide_status(False, [view("disk", F), view("mem", F)])
    assert message == "Non-critical checks failing: disk, mem"
    _, message = decide_status(False, [view("pubsub", W, critical=True)])
    assert message == "Critical checks warning: pubsub"
    _, message = decide_status(False, [view("disk", F), view("pubsub", W, critical=True)])
    assert message == "Non-critical checks failing: disk; critical checks warning: pubsub"


@pytest.mark.parametrize(
    ("failures", "critical", "enabled", "ever_passed", "expected"),
    [
        (2, True, True, True, False),
        (3, True, True, True, True),
        (9, True, True, True, True),
        (9, False, True, True, False),  # non-critical checks never end a node
        (9, True, False, True, False),  # nor do disabled ones
        (9, True, True, False, False),  # nor a check that never passed: nothing broke
    ],
)
def test_shutdown_after_consecutive_critical_failures(
    failures: int, critical: bool, enabled: bool, ever_passed: bool, expected: bool
) -> None:
    flap = FlapState(CheckState.FAILING, failures, 0, ever_passed, plain_failures=failures)
    reason = shutdown_reason([view("db", flap, critical, enabled)], shutdown_after=3)
    assert (reason is not None) is expected
    if expected:
        assert reason == f"critical check 'db' failed {failures} times in a row"


@pytest.mark.parametrize(
    ("failures", "plain", "expected"),
    [
        (9, 0, False),  # all warnings: not the node's fault
        (9, 2, False),  # two ordinary failures since the last pass
        (9, 3, True),  # three, whatever warnings came between
    ],
)
def test_shutdown_counts_only_ordinary_failures(failures: int, plain: int, expected: bool) -> None:
    flap = FlapState(CheckState.FAILING, failures, 0, True, plain_failures=plain)
    reason = shutdown_reason([view("pubsub", flap, critical=True)], shutdown_after=3)
    assert (reason is not None) is expected
    if expected:
        assert reason == (
            "critical check 'pubsub' failed 3 times since it last passed, warnings between"
        )
