"""The scheduler and the status it rolls up, on trio's virtual clock with exact times."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from mesh.errors import CheckRegistrationError
from mesh.flap import CheckState, Thresholds
from mesh.manager import CheckManager, ResultEvent
from mesh.model import CheckResult, FailureReason, HealthCheck, Status

EPOCH = 1_759_228_200.0
Start = Callable[[CheckManager], trio.Nursery]


def new_manager(**kwargs: object) -> CheckManager:
    return CheckManager(
        node_id="node-1", version="v-test", wall_clock=lambda: EPOCH + trio.current_time(), **kwargs
    )  # type: ignore[arg-type]


def scripted(outcomes: str, runs: list[float] | None = None) -> Callable[[], object]:
    """A checker that passes ('p') or fails ('f') per run, then repeats its last outcome."""
    count = 0

    async def checker() -> CheckResult:
        nonlocal count
        if runs is not None:
            runs.append(trio.current_time())
        outcome = outcomes[min(count, len(outcomes) - 1)]
        count += 1
        return CheckResult(outcome == "p", f"run {count}")

    return checker


@pytest.fixture
async def running() -> AsyncIterator[Callable[[CheckManager], trio.Nursery]]:
    async with trio.open_nursery() as nursery:

        def start(manager: CheckManager) -> trio.Nursery:
            nursery.start_soon(manager.run)
            return nursery

        yield start
        nursery.cancel_scope.cancel()


async def test_each_check_runs_on_its_own_interval(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    fast: list[float] = []
    slow: list[float] = []
    manager.register(HealthCheck("fast", scripted("p", fast), interval=5))
    manager.register(HealthCheck("slow", scripted("p", slow), interval=30))
    running(manager)
    await trio.sleep(61)
    assert fast == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]
    assert slow == [0, 30, 60]


async def test_hanging_check_times_out_without_disturbing_others(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    other: list[float] = []

    async def hangs() -> CheckResult:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    manager.register(HealthCheck("hangs", hangs, interval=30, timeout=10))
    manager.register(HealthCheck("other", scripted("p", other), interval=4))
    running(manager)
    await trio.sleep(9.5)
    assert manager.get("hangs").last_result is None
    assert manager.decide()[0] is Status.STARTING
    await trio.sleep(1)
    result = manager.get("hangs").last_result
    assert result is not None
    assert not result.healthy
    assert result.message == "check timed out after 10s"
    assert result.error == "timeout"
    assert result.latency == 10
    assert result.timestamp == EPOCH + 10
    assert other == [0, 4, 8]
    # The next run of the hung check starts on schedule, at 30.
    await trio.sleep(30)
    assert manager.flap_state("hangs").consecutive_failures == 2


async def test_raising_check_becomes_failed_result_and_keeps_running(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    calls = 0

    async def raises() -> CheckResult:
        nonlocal calls
        calls += 1
        raise ConnectionError("db down")

    manager.register(HealthCheck("raises", raises, interval=10))
    running(manager)
    await trio.sleep(25)
    result = manager.get("raises").last_result
    assert result is not None and not result.healthy
    assert result.error == "ConnectionError: db down"
    assert "db down" in result.message
    assert calls == 3


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        ("all good", "check returned str, expected CheckResult"),
        (None, "check returned NoneType, expected CheckResult"),
        (CheckResult("yes", "x"), "check returned a result whose 'healthy' is str, not bool"),  # type: ignore[arg-type]
    ],
)
async def test_garbage_result_becomes_failed_result(
    autojump_clock: trio.testing.MockClock, garbage: object, message: str
) -> None:
    manager = new_manager()

    async def odd() -> object:
        return garbage

    check = HealthCheck("odd", odd)
    manager.register(check)
    result = await manager.run_check(check)
    assert not result.healthy
    assert result.message == message


async def test_status_rolls_up_with_flap_control(running: Start, autojump_clock: MockClock) -> None:
    manager = new_manager(thresholds=Thresholds(fail_after=3, pass_after=2))
    manager.register(HealthCheck("critical", scripted("pppffffpp"), interval=10, critical=True))
    manager.register(HealthCheck("minor", scripted("p"), interval=10))
    seen: list[tuple[float, Status]] = []
    manager.add_listener(lambda _e: seen.append((trio.current_time(), manager.decide()[0])))
    assert manager.decide()[0] is Status.STARTING
    running(manager)
    await trio.sleep(85)
    critical_status = [status for (t, status) in seen[1::2]]  # after both checks ran
    assert critical_status == [
        Status.HEALTHY,
        Status.HEALTHY,
        Status.HEALTHY,  # p p p
        Status.HEALTHY,
        Status.HEALTHY,  # f f: not yet
        Status.UNHEALTHY,
        Status.UNHEALTHY,  # 3rd failure at t=50 turns it; f at 60
        Status.UNHEALTHY,  # one pass at 70 is not enough
        Status.HEALTHY,  # the second at 80 is
    ]
    transitions = manager.history.recent()
    assert [(t.to_state, t.at - EPOCH) for t in transitions] == [
        (CheckState.PASSING, 80),
        (CheckState.FAILING, 50),
        (CheckState.PASSING, 0),
        (CheckState.PASSING, 0),
    ]


async def test_degraded_when_only_non_critical_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    manager = new_manager()
    manager.register(HealthCheck("critical", scripted("p"), critical=True))
    manager.register(HealthCheck("minor", scripted("f")))
    for check in manager.checks:
        await manager.run_check(check)
    status, message = manager.decide()
    assert status is Status.DEGRADED
    assert message == "Non-critical checks failing: minor"


async def test_shutdown_requested_once_after_consecutive_critical_failures(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    requests: list[tuple[float, str]] = []
    manager.set_shutdown_handler(lambda reason: requests.append((trio.current_time(), reason)))
    # A single transient failure never ends the node...
    manager.register(HealthCheck("flaky", scripted("pfpfpf"), interval=10, critical=True))
    # ...three in a row do.
    manager.register(HealthCheck("db", scripted("pfff"), interval=10, critical=True))
    # A check that never passed since start did not break: readiness covers it, no shutdown.
    manager.register(HealthCheck("never-up", scripted("f"), interval=10, critical=True))
    running(manager)
    await trio.sleep(100)
    assert requests == [(30, "critical check 'db' failed 3 times in a row")]


async def test_non_critical_failures_never_request_shutdown(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    requests: list[str] = []
    manager.set_shutdown_handler(requests.append)
    manager.register(HealthCheck("disk", scripted("f"), interval=1))
    running(manager)
    await trio.sleep(20)
    assert requests == []
    assert manager.decide()[0] is Status.DEGRADED


async def test_warning_results_of_a_critical_check_degrade_and_never_end_the_node(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    requests: list[str] = []
    manager.set_shutdown_handler(requests.append)
    outcomes = iter("pwwwwwf")

    async def checker() -> CheckResult:
        await trio.lowlevel.checkpoint()
        outcome = next(outcomes, "f")
        if outcome == "w":
            return CheckResult.warn("no peer to prove it with")
        return CheckResult(outcome == "p", outcome)

    manager.register(HealthCheck("pubsub", checker, interval=10, critical=True))
    running(manager)
    await trio.sleep(55)  # p then 5 warnings: failing, yet only degraded
    assert manager.flap_state("pubsub").state is CheckState.FAILING
    assert manager.decide() == (Status.DEGRADED, "Critical checks warning: pubsub")
    await trio.sleep(10)  # one ordinary failure after the warnings: unhealthy, no shutdown
    assert manager.decide()[0] is Status.UNHEALTHY
    assert requests == []
    await trio.sleep(20)  # the third ordinary failure in a row does end it
    assert requests == [
        "critical check 'pubsub' failed 3 times since it last passed, warnings between"
    ]


async def test_registration_errors(autojump_clock: trio.testing.MockClock) -> None:
    manager = new_manager()
    manager.register(HealthCheck("a", scripted("p")))
    with pytest.raises(CheckRegistrationError, match="'a' is already registered"):
        manager.register(HealthCheck("a", scripted("p")))
    with pytest.raises(CheckRegistrationError, match="no health check named 'b'"):
        manager.unregister("b")
    with pytest.raises(CheckRegistrationError, match="interval must be a positive"):
        manager.register(HealthCheck("c", scripted("p"), interval=0))
    with pytest.raises(CheckRegistrationError, match="non-empty name"):
        manager.register(HealthCheck("", scripted("p")))


async def test_register_and_unregister_while_running(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    runs: list[float] = []
    running(manager)
    await trio.sleep(1)
    manager.register(HealthCheck("late", scripted("p", runs), interval=5))
    await trio.sleep(11)
    assert runs == [1, 6, 11]
    manager.unregister("late")
    await trio.sleep(20)
    assert runs == [1, 6, 11]
    assert manager.checks == []


async def test_disabled_checks_never_run(running: Start, autojump_clock: MockClock) -> None:
    manager = new_manager()
    runs: list[float] = []
    manager.register(HealthCheck("off", scripted("p", runs), enabled=False))
    manager.register(HealthCheck("on", scripted("p")))
    running(manager)
    await trio.sleep(100)
    assert runs == []
    assert manager.decide()[0] is Status.HEALTHY


async def test_history_is_bounded(running: Start, autojump_clock: MockClock) -> None:
    manager = new_manager(thresholds=Thresholds(fail_after=1, pass_after=1), history_size=5)
    manager.register(HealthCheck("flip", scripted("pf" * 20), interval=1))
    running(manager)
    await trio.sleep(39.5)
    assert len(manager.history) == 5
    assert [t.at - EPOCH for t in manager.history.recent()] == [39, 38, 37, 36, 35]


async def test_overrunning_check_starts_next_run_at_once(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    runs: list[float] = []

    async def slow() -> CheckResult:
        runs.append(trio.current_time())
        await trio.sleep(7)
        return CheckResult(True, "slow")

    manager.register(HealthCheck("slow", slow, interval=5, timeout=10))
    running(manager)
    await trio.sleep(20)
    assert runs == [0, 7, 14]


async def test_a_broken_listener_does_not_stop_checks(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()

    def broken(_event: ResultEvent) -> None:
        raise RuntimeError("observer bug")

    manager.add_listener(broken)
    runs: list[float] = []
    manager.register(HealthCheck("a", scripted("p", runs), interval=10))
    running(manager)
    await trio.sleep(25)
    assert runs == [0, 10, 20]


async def test_stopping_status_and_score(autojump_clock: trio.testing.MockClock) -> None:
    manager = new_manager()
    check = HealthCheck("a", scripted("p"))
    manager.register(check)
    await manager.run_check(check)
    assert manager.system_score() == 1.0
    manager.begin_stopping()
    assert manager.decide()[0] is Status.STOPPING
    assert manager.system_score() == 0.0


async def test_start_delay_postpones_only_the_first_run(
    running: Start, autojump_clock: MockClock
) -> None:
    manager = new_manager()
    runs: list[float] = []
    manager.register(HealthCheck("net", scripted("p", runs), interval=5, start_delay=2))
    running(manager)
    await trio.sleep(13)
    assert runs == [2, 7, 12]
    assert manager.decide()[0] is Status.HEALTHY


async def test_each_failed_run_says_why_from_a_fixed_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    manager = new_manager()
    events: list[ResultEvent] = []
    manager.add_listener(events.append)

    async def hangs() -> CheckResult:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def raises() -> CheckResult:
        raise OSError("connection refused by 10.0.0.7:9000")

    async def garbage() -> object:
        return "fine, honestly"

    async def reports(healthy: bool) -> CheckResult:
        # A peer's words in the result: they must never become the reason.
        return CheckResult(healthy, "peer says: rm -rf", error="peer says: rm -rf")

    checks = [
        HealthCheck("hangs", hangs, timeout=1),
        HealthCheck("raises", raises),
        HealthCheck("garbage", garbage),
        HealthCheck("fails", lambda: reports(False)),
        HealthCheck("passes", lambda: reports(True)),
    ]
    for check in checks:
        manager.register(check)
        await manager.run_check(check)
    assert {e.check.name: e.failure for e in events} == {
        "hangs": FailureReason.TIMEOUT,
        "raises": FailureReason.EXCEPTION,
        "garbage": FailureReason.INVALID_RESULT,
        "fails": FailureReason.UNHEALTHY,
        "passes": None,
    }
