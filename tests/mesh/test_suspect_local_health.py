"""Rule 8, the suspect's side: a member's own reported local health stretches a
suspicion of it (mesh/awareness.py, HealthDigest.local_health)."""

from __future__ import annotations

import dataclasses

from mesh.cluster_view import ClusterView
from mesh.messages import MemberState
from tests.mesh.test_cluster_view import ME, QUIET, B, C, X, dg, notice, state

# QUIET: suspicion min 4 s / max 8 s (K = 2), awareness_max 4, digest silence out of the way.


def _suspected(reported: int) -> ClusterView:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C):
        assert view.on_digest(dg(node), 0.0).accepted
    assert view.on_digest(dataclasses.replace(dg(X), local_health=reported), 0.0).accepted
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
