from __future__ import annotations

import pytest

from mesh.flap import CheckState, FlapState, Thresholds, observe

P, F, _ = CheckState.PASSING, CheckState.FAILING, CheckState.PENDING


DEFAULT = Thresholds(fail_after=3, pass_after=2)


def run(results: str, limits: Thresholds = DEFAULT) -> list[str]:
    """Feed 'p'/'f' results; return the state after each one as 'P'/'F'."""
    state = FlapState()
    seen = []
    for char in results:
        state = observe(state, char == "p", limits)
        seen.append("P" if state.state is P else "F")
    return seen


@pytest.mark.parametrize(
    ("results", "states"),
    [
        ("p", "P"),  # the first result sets the state directly
        ("f", "F"),
        ("pf", "PP"),  # one failure is not enough
        ("pff", "PPP"),
        ("pfff", "PPPF"),  # the third in a row turns it
        ("pffpff", "PPPPPP"),  # a pass in between resets the count
        ("pffffp", "PPPFFF"),  # one pass is not enough to recover
        ("pfffpp", "PPPFFP"),  # two in a row are
        ("pfffpfp", "PPPFFFF"),
        ("fp", "FF"),
        ("fpp", "FFP"),
    ],
)
def test_flap_table(results: str, states: str) -> None:
    assert "".join(run(results)) == states


def test_counters_keep_counting_past_the_threshold() -> None:
    state = FlapState()
    for _ in range(5):
        state = observe(state, False, Thresholds())
    assert state == FlapState(F, consecutive_failures=5, consecutive_successes=0, plain_failures=5)


def test_a_warning_fails_like_any_failure_but_is_not_counted_for_shutdown() -> None:
    limits = Thresholds(fail_after=2)
    state = observe(FlapState(), True, limits)
    for _ in range(3):
        state = observe(state, False, limits, warning=True)
    assert state.state is F and state.warning and state.plain_failures == 0
    state = observe(state, False, limits)  # an ordinary failure after the warnings
    assert not state.warning and state.consecutive_failures == 4
    assert state.plain_failures == 1
    state = observe(state, True, limits)  # a pass forgets the failures
    assert state.plain_failures == 0 and not state.warning
    assert not observe(state, True, limits, warning=True).warning  # passes ignore it


def test_a_warning_in_between_does_not_reset_the_count_of_failures() -> None:
    # A stranger connected now and then makes the PubSub probe warn on those runs: the
    # ordinary failures around them still add up to a shutdown.
    state = observe(FlapState(), True, Thresholds())
    for warning in (False, False, True, False):
        state = observe(state, False, Thresholds(), warning=warning)
    assert state.plain_failures == 3 and not state.warning


def test_thresholds_of_one_follow_every_result() -> None:
    assert "".join(run("pfpf", Thresholds(fail_after=1, pass_after=1))) == "PFPF"


@pytest.mark.parametrize("bad", [{"fail_after": 0}, {"pass_after": 0}])
def test_thresholds_below_one_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Thresholds(**bad)
