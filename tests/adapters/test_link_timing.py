"""Per-peer ping timeouts and the network score (``adapters.link_timing``): pure."""

from __future__ import annotations

import pytest

from adapters.link_timing import LinkTiming


def timing(**changes: float) -> LinkTiming:
    settings = {"floor": 0.5, "ceiling": 2.0, "slow": 0.2, "max_score": 7}
    settings.update(changes)
    return LinkTiming(**settings)  # type: ignore[arg-type]


def test_a_peer_never_answered_gets_the_ceiling() -> None:
    assert timing().timeout("a") == 2.0


def test_a_quick_peer_gets_the_floor() -> None:
    t = timing(floor=0.001)
    for _ in range(5):
        t.answered("a", 0.001)
    for _ in range(5):
        t.answered("b", 0.1)
    assert t.timeout("a") < t.timeout("b")  # per peer


def test_a_peer_not_measured_yet_gets_what_the_others_say() -> None:
    t = timing()
    for _ in range(5):
        t.answered("a", 0.003)
    assert t.timeout("a") == t.timeout("b") == 0.5
    t.unanswered("b")  # its backoff is its own, once it has answered
    assert t.timeout("b") == 0.5


def test_a_jittery_peer_gets_more_up_to_the_ceiling() -> None:
    t = timing()
    for rtt in (0.01, 0.3, 0.02, 0.35, 0.01, 0.4):
        t.answered("a", rtt)
    assert 0.5 < t.timeout("a") < 2.0
    for _ in range(20):
        t.answered("b", 1.5)  # steadily slow: its own time, a little more
    assert 1.5 < t.timeout("b") < 1.6
    t.answered("c", 2.5)
    assert t.timeout("c") == 2.0


def test_srtt_and_rttvar_follow_rfc_6298() -> None:
    t = timing(floor=0.001)
    t.answered("a", 0.1)  # first sample: srtt = R, rttvar = R / 2
    assert t.timeout("a") == pytest.approx(0.1 + 4 * 0.05)
    t.answered("a", 0.2)  # rttvar = 3/4 * 0.05 + 1/4 * 0.1; srtt = 7/8 * 0.1 + 1/8 * 0.2
    assert t.timeout("a") == pytest.approx(0.1125 + 4 * 0.0625)


def test_an_unanswered_ping_doubles_the_timeout_until_the_next_answer() -> None:
    t = timing(floor=0.001)
    t.answered("a", 0.1)
    base = t.timeout("a")
    t.unanswered("a")
    assert t.timeout("a") == pytest.approx(2 * base)
    t.unanswered("a")
    t.unanswered("a")
    assert t.timeout("a") == 2.0  # never past the ceiling
    t.answered("a", 0.1)
    assert t.timeout("a") < 2 * base


def test_each_late_answer_raises_the_score_and_each_timely_one_lowers_it() -> None:
    t = timing(max_score=7)
    for _ in range(10):
        t.answered("a", 0.01)
    assert t.score == 0
    for _ in range(3):
        t.answered("a", 0.25)  # a retransmit's 200 ms at least
    assert t.score == 3
    for _ in range(10):
        t.answered("b", 0.3)
    assert t.score == 7  # at most max_score
    t.answered("a", 0.01)
    assert t.score == 6


def test_a_burst_of_late_answers_is_forgotten_after_as_many_timely_ones() -> None:
    # A neighbour's restart on the same cores: five late answers, then a quiet network.
    # The next freeze must not wait out a stretched suspicion (memberlist's awareness).
    t = timing()
    for _ in range(5):
        t.answered("a", 0.4)
    for _ in range(5):
        t.answered("a", 0.01)
    assert t.score == 0


def test_steady_lateness_keeps_the_score_up() -> None:
    # Two answers in three late (a loaded peer): never back to a bare suspicion.
    t = timing()
    for _ in range(20):
        t.answered("a", 0.3)
        t.answered("a", 0.3)
        t.answered("a", 0.01)
    assert t.score >= 5


def test_unanswered_pings_leave_the_score_alone() -> None:
    # A frozen peer must not make its observers slower to condemn it.
    t = timing()
    t.answered("a", 0.01)
    for _ in range(50):
        t.unanswered("a")
    assert t.score == 0


def test_the_peer_table_is_bounded() -> None:
    t = timing(max_peers=3)
    for peer in "abcd":
        t.answered(peer, 0.01)
    for _ in range(30):
        t.answered("d", 1.5)  # the others' estimate follows
    assert "a" not in t._peers and len(t._peers) == 3  # the least recently answered went
    assert t.timeout("a") == t.timeout("zz") > 0.5


@pytest.mark.parametrize(
    "changes",
    [{"floor": 0.0}, {"floor": 3.0}, {"slow": 0.0}, {"max_peers": 0}, {"max_score": -1}],
)
def test_bad_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        timing(**changes)
