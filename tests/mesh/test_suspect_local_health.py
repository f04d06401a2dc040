"""Rule 8, the suspect's side: a member's own reported local health stretches a
suspicion of it (mesh/awareness.py, HealthDigest.local_health)."""

from __future__ import annotations

import dataclasses

from mesh.cluster_view import ClusterView
from mesh.messages import MemberState
from mesh.model import Status
from tests.mesh.test_cluster_view import ME, QUIET, B, C, X, dg, notice, state

# QUIET: suspicion min 4 s / max 8 s (K = 2), awareness_max 4, digest silence out of the way.


def _suspected(reported: int, status: Status = Status.HEALTHY) -> ClusterView:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C):
        assert view.on_digest(dg(node), 0.0).accepted
    digest = dataclasses.replace(dg(X, status=status), local_health=reported)
    assert view.on_digest(digest, 0.0).accepted
    view.on_ping_failed(X, 0.0)
    view.on_suspect_notice(notice(B, X), 0.0)
    view.on_suspect_notice(notice(C, X), 0.0)  # K = 2 confirmations: the 4 s minimum
    return view


def _dies_at(view: ClusterView, at: float) -> bool:
    view.tick(at - 0.01)
    if state(view) is not MemberState.SUSPECT:
        return False
    view.tick(at)
    return state(view) is MemberState.DEAD


def test_a_suspect_that_said_it_is_fine_gets_the_minimum() -> None:
    assert _dies_at(_suspected(0), 4.0)


def test_a_starved_suspect_gets_its_health_times_longer_to_refute() -> None:
    assert _dies_at(_suspected(2), 12.0)  # multiplier 1 + 2


def test_what_a_suspect_reports_is_capped_with_ours() -> None:
    # A member claiming any health gets at most awareness_max times the timeout, and our
    # own local health adds to its up to the same cap.
    assert _dies_at(_suspected(64), 4.0 * QUIET.awareness_max)
    view = _suspected(1)
    view.set_network_health(1)
    assert _dies_at(view, 4.0 * 3)


def test_the_newest_digest_says_how_starved_it_is() -> None:
    # A member that recovered says so in its next digest; suspected afterwards, it gets the
    # minimum again.
    view = _suspected(3)
    view.tick(15.0)
    assert state(view) is MemberState.SUSPECT  # 16 s
    view.on_digest(dataclasses.replace(dg(X, 2), local_health=0), 15.0)
    assert state(view) is MemberState.ALIVE
    view.on_ping_failed(X, 16.0)
    view.on_suspect_notice(notice(B, X, 2), 16.0)
    view.on_suspect_notice(notice(C, X, 2), 16.0)
    assert _dies_at(view, 20.0)


def test_a_suspect_still_starting_gets_the_patience_of_a_starved_one() -> None:
    # A member whose own digest says it is starting (its first checks still running) is
    # busiest then: it is taken to report starting_health, so a suspicion of it waits
    # that many multiples longer, and the pinger is patient with it.
    assert QUIET.starting_health == 2
    view = _suspected(0, Status.STARTING)
    assert view.reported_health(X) == 2
    assert _dies_at(view, 4.0 * 3)
    # What it reports itself counts when that is more.
    assert _dies_at(_suspected(3, Status.STARTING), 4.0 * 4)


def test_starting_patience_ends_with_the_digest_that_says_so() -> None:
    view = _suspected(0, Status.STARTING)
    view.on_digest(dg(X, 2), 1.0)  # healthy now: the newer digest clears it
    assert state(view) is MemberState.ALIVE and view.reported_health(X) == 0
    view.on_ping_failed(X, 2.0)
    view.on_suspect_notice(notice(B, X, 2), 2.0)
    view.on_suspect_notice(notice(C, X, 2), 2.0)
    assert _dies_at(view, 6.0)


def test_starting_patience_can_be_turned_off() -> None:
    view = ClusterView(ME, dataclasses.replace(QUIET, starting_health=0))
    for node in (ME, B, C):
        view.on_digest(dg(node), 0.0)
    view.on_digest(dg(X, status=Status.STARTING), 0.0)
    assert view.reported_health(X) == 0
