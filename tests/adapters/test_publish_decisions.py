"""When our digest and suspicions go out (``adapters.publish_decisions``): plain values and
exact times, no trio, no libp2p. Production timing: a change waits out a 1 s
``min_publish_interval``, a refresh every 30 s; the default budget is 5 digests a second
split over the live members (``publish_budget``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Set as AbstractSet

import pytest

from adapters.gossip_tuning import GossipTuning
from adapters.publish_decisions import PublishDecisions, Said
from mesh.cluster_config import production
from mesh.cluster_events import PublishSuspect
from mesh.messages import Version
from mesh.model import Status

SAID = Said(Status.HEALTHY, 0.9, {}, "http://10.0.0.1:8081", ())
BASIS = Version(1_000, 0, 1)


def _sent_at(t: float, **tuning: float) -> PublishDecisions:
    decisions = PublishDecisions(GossipTuning(**tuning), production())  # type: ignore[arg-type]
    decisions.sent(t, SAID)
    return decisions


def _due(
    decisions: PublishDecisions, now: float, *, mesh: AbstractSet[str] = frozenset(), n: int = 1
) -> bool:
    return decisions.digest_due(now, n, lambda: mesh, lambda: SAID)


def _unread() -> Said:
    raise AssertionError("a refutation decides without reading our state")


def test_the_first_digest_goes_out_at_once_then_the_refresh() -> None:
    decisions = PublishDecisions(GossipTuning(), production())
    assert _due(decisions, 0.0)
    decisions.sent(0.0, SAID)
    assert [_due(decisions, t) for t in (0.5, 29.9, 30.0)] == [False, False, True]


def test_news_waits_out_min_publish_interval() -> None:
    decisions = _sent_at(0.0)
    degraded = Said(Status.DEGRADED, 0.9, {}, "http://10.0.0.1:8081", ())
    due = [decisions.digest_due(t, 1, frozenset, lambda: degraded) for t in (0.5, 1.0)]
    assert due == [False, True]


def test_starving_and_recovering_are_news() -> None:
    # Peers stretch a suspicion of us by our local health (mesh/awareness.py): both
    # edges go out at once, not with the next refresh.
    decisions = _sent_at(0.0)
    starved = dataclasses.replace(SAID, local_health=7)
    assert decisions.digest_due(1.0, 1, frozenset, lambda: starved)
    decisions.sent(1.0, starved)
    assert not decisions.digest_due(2.0, 1, frozenset, lambda: starved)
    assert decisions.digest_due(2.0, 1, frozenset, lambda: SAID)


def test_a_peer_new_to_our_mesh_hears_of_us_at_once_and_once() -> None:
    decisions = _sent_at(0.0)
    assert _due(decisions, 0.1, mesh={"P1"})
    assert decisions.announced == {"P1"}
    decisions.sent(0.1, SAID)
    assert not _due(decisions, 0.2, mesh={"P1"})
    decisions.forget("P1")  # its last connection closed: announced again when it is back
    assert _due(decisions, 0.3, mesh={"P1"})


def test_a_refutation_goes_out_at_once_then_waits_out_refute_interval() -> None:
    decisions = _sent_at(0.0)
    decisions.refute()
    assert decisions.digest_due(0.0, 1, frozenset, _unread)
    decisions.sent(0.0, SAID)
    decisions.refute()
    # Nothing else of ours goes out while it waits, not even an announcement.
    assert not decisions.digest_due(0.5, 1, lambda: {"P1"}, _unread)
    assert decisions.digest_due(1.0, 1, frozenset, _unread)


@pytest.mark.parametrize(("n", "taken"), [(1, 5), (10, 5), (100, 2)])
def test_suspicions_take_the_budget_of_our_share(n: int, taken: int) -> None:
    # 5 a second split over n, burst 5 s of it (at least 2, at most 5).
    decisions = _sent_at(0.0)
    for i in range(8):
        assert decisions.queue_suspect(PublishSuspect(f"P{i}", BASIS)) == "queued"
    assert not _due(decisions, 0.0, n=n)  # nothing of ours is due: sizes the budget
    out = [decisions.next_suspect(0.0) for _ in range(8)]
    assert [s for s in out if s is not None] == [
        PublishSuspect(f"P{i}", BASIS) for i in range(taken)
    ]


def test_our_digests_do_not_hold_back_a_suspicion() -> None:
    # 20 members: 0.5 a second each, burst 2.5. Two announcements use up the digests'.
    decisions = _sent_at(0.0)
    assert _due(decisions, 10.0, mesh={"P1"}, n=20)
    decisions.sent(10.0, SAID)
    assert _due(decisions, 10.0, mesh={"P1", "P2"}, n=20)
    decisions.sent(10.0, SAID)
    assert not _due(decisions, 10.0, mesh={"P1", "P2", "P3"}, n=20)
    decisions.queue_suspect(PublishSuspect("P9", BASIS))
    assert decisions.next_suspect(10.0) == PublishSuspect("P9", BASIS)


def test_the_suspicion_queue_drops_repeats_and_overflow() -> None:
    decisions = _sent_at(0.0, max_pending_suspects=2)
    queue = [PublishSuspect(p, BASIS) for p in ("P1", "P1", "P2", "P3")]
    results = [decisions.queue_suspect(s) for s in queue]
    assert results == ["queued", "duplicate", "queued", "full"]
    # The same suspicion as a witness's notice (rule 7) is another statement.
    assert decisions.queue_suspect(PublishSuspect("P1", BASIS, refused=True)) == "full"
    decisions.stop()  # leaving: what is queued is not published
    assert decisions.next_suspect(0.0) is None


def test_our_peers_would_accept_the_most_we_publish() -> None:
    # Digests and suspicions at publish_rate each, and a refutation every refute_interval.
    with pytest.raises(ValueError, match="signer_rate"):
        GossipTuning(signer_rate=10.0)
    with pytest.raises(ValueError, match="signer_rate"):
        GossipTuning(signer_burst=10.0)
    GossipTuning()  # the defaults pass


def test_a_rise_goes_out_after_the_base_refresh_period_not_the_crowds_refresh() -> None:
    # In a large cluster the refresh stretches with n (refresh_interval); a recovered
    # score must not wait for it, only for refresh_period. A fall is news at once.
    config = dataclasses.replace(production(), refresh_crowd=80.0)
    n = 200
    assert config.refresh_interval(n) > 2 * config.refresh_period
    decisions = PublishDecisions(GossipTuning(), config)
    low = dataclasses.replace(SAID, score=0.5, components={"dht": 0.5})
    decisions.sent(0.0, low)
    recovered = dataclasses.replace(SAID, score=0.95, components={"dht": 1.0})
    period = config.refresh_period
    assert not decisions.digest_due(period - 0.1, n, frozenset, lambda: recovered)
    assert decisions.digest_due(period, n, frozenset, lambda: recovered)
    decisions.sent(period, recovered)
    fallen = dataclasses.replace(recovered, components={"dht": 0.9})
    assert decisions.digest_due(period + 1.0, n, frozenset, lambda: fallen)


@pytest.mark.parametrize("name", ["publish_poll", "tick_max", "redial_check"])
@pytest.mark.parametrize("value", [0.0, -0.25, float("inf"), float("nan")])
def test_the_wake_grid_periods_must_be_finite_and_positive(name: str, value: float) -> None:
    # mesh/wake_grid.py raises on a zero period out of the loop that asked, and infinity
    # would stop the loop: refused when the tuning is made.
    with pytest.raises(ValueError, match=f"GossipTuning.{name} must be finite and > 0"):
        GossipTuning(**{name: value})  # type: ignore[arg-type]
