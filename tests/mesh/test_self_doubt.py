"""Self-doubt (mesh.self_doubt): the rule on its own, then what the view makes of it."""

from __future__ import annotations

import dataclasses

import pytest

from mesh.cluster_events import PublishRefute, PublishSuspect
from mesh.messages import MemberState
from mesh.self_doubt import SelfDoubt
from tests.mesh.test_cluster_view import QUIET, B, C, D, X, cluster, dg, notice, state

SUSPECT, DEAD = MemberState.SUSPECT, MemberState.DEAD


def test_one_failing_peer_is_that_peers_problem() -> None:
    doubt = SelfDoubt(window=10.0, max_score=7)
    for t in range(20):
        doubt.ping_failed("frozen", t * 0.5)
    assert doubt.score(9.5) == 0


def test_each_more_failing_peer_and_each_refuted_observer_adds_one_until_the_cap() -> None:
    doubt = SelfDoubt(window=10.0, max_score=3)
    doubt.ping_failed("a", 0.0)
    doubt.ping_failed("b", 1.0)
    assert doubt.score(1.0) == 1
    doubt.refuted("x", 2.0)
    doubt.refuted("x", 2.5)  # one observer suspecting us again and again: one doubt
    assert doubt.score(2.5) == 2
    doubt.ping_failed("c", 3.0)
    doubt.ping_failed("d", 3.0)
    assert doubt.score(3.0) == 3  # 3 + 1 more, capped


def test_doubt_ages_out_after_the_window() -> None:
    doubt = SelfDoubt(window=10.0, max_score=7)
    doubt.ping_failed("a", 0.0)
    doubt.ping_failed("b", 0.0)
    doubt.refuted("x", 5.0)
    doubt.ping_failed("a", 6.0)  # a failed again: counted from its latest failure
    assert doubt.next_change() == 10.0  # b's failure ages out first
    assert doubt.score(9.99) == 2
    assert doubt.score(10.0) == 1  # b's failure is gone; a and the refutation remain
    assert doubt.score(15.0) == 0  # so is the refutation; a alone is a's problem
    assert doubt.score(16.0) == 0
    assert doubt.next_change() is None


def test_minted_peers_failing_our_pings_keep_the_doubt_bounded() -> None:
    # The attack: thousands of identities that connect and never answer.
    doubt = SelfDoubt(window=10.0, max_score=7, max_entries=64)
    for i in range(10_000):
        doubt.ping_failed(f"sybil-{i}", i * 0.0001)
        doubt.refuted(f"sybil-{i}", i * 0.0001)
    assert doubt.score(1.0) == 7
    assert len(doubt._failed) == 64 and len(doubt._refuted) == 64


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SelfDoubt(window=0.0, max_score=1)


# --- the view ------------------------------------------------------------------------------

CFG = dataclasses.replace(QUIET, awareness_max=8)


def test_pings_failing_to_many_members_raise_doubt_until_they_age_out() -> None:
    view = cluster(X, B, C, D, "QmE", config=CFG)
    for peer in (X, D, "QmE"):
        outcome = view.on_ping_failed(peer, 0.0)
        # Doubt silences nothing: our evidence is still published.
        assert any(isinstance(e, PublishSuspect) for e in outcome.events)
    assert (view.doubt, view.starved) == (2, False)
    view.tick(9.99)
    assert view.doubt == 2
    view.tick(10.0)  # the failures are 10 s old
    assert view.doubt == 0


def test_doubt_stretches_our_pings_not_the_views_timeouts() -> None:
    # As memberlist's awareness: a frozen peer must not be found later by an observer
    # that happened to fail a ping or two elsewhere.
    view = cluster(X, B, C, D, "QmE", config=CFG)
    for peer in (X, D, "QmE"):
        view.on_ping_failed(peer, 0.0)
    view.on_suspect_notice(notice(B, X), 0.0)
    view.on_suspect_notice(notice(C, X), 0.0)  # K = 2: 4 s
    assert (view.doubt, view.multiplier) == (2, 1)
    view.tick(3.99)
    assert state(view) is SUSPECT
    view.tick(4.0)
    assert state(view) is DEAD


def test_one_failing_member_does_not_slow_its_own_detection() -> None:
    view = cluster(X, B, C, config=CFG)
    for t in (0.0, 0.5, 1.0):
        view.on_ping_failed(X, t)
    view.on_suspect_notice(notice(B, X), 0.0)
    view.on_suspect_notice(notice(C, X), 0.0)
    assert view.multiplier == 1
    view.tick(4.0)
    assert state(view) is DEAD


def test_strangers_that_never_answer_our_pings_raise_no_doubt() -> None:
    view = cluster(X, B, config=CFG)
    for i in range(50):
        assert view.on_ping_failed(f"QmStranger{i}", float(i) * 0.1).events == ()
    assert (view.doubt, view.multiplier) == (0, 1)


def test_failures_of_members_already_suspected_raise_no_doubt() -> None:
    # Minted members that never answer are suspected at their first failure; their
    # next failures are theirs, not ours.
    view = cluster(X, B, C, config=CFG)
    view.on_ping_failed(X, 0.0)
    view.on_ping_failed(B, 0.0)
    assert view.doubt == 1
    for t in range(1, 9):
        view.on_ping_failed(X, float(t))
        view.on_ping_failed(B, float(t))
    view.tick(9.0)
    assert view.doubt == 1
    deadline = view.next_deadline()
    assert deadline is not None and deadline <= 10.0  # the view wakes when it ages out
    view.tick(10.0)
    assert view.doubt == 0  # their later failures did not keep it up


def test_each_refutation_we_publish_adds_doubt() -> None:
    view = cluster(X, B, C, config=CFG)
    outcome = view.on_suspect_notice(notice(B, "QmMe"), 0.0)
    assert PublishRefute(1) in outcome.events
    assert view.doubt == 1
    # The same suspicion again, from another observer: already refuted, no more doubt.
    assert view.on_suspect_notice(notice(C, "QmMe"), 0.0).events == ()
    assert view.doubt == 1
    assert view.on_digest(dg("QmMe", 2, inc=1), 0.5).accepted  # our refuting digest
    outcome = view.on_suspect_notice(notice(B, "QmMe", 2, inc=1), 1.0)
    assert PublishRefute(2) in outcome.events
    assert view.doubt == 1  # B again: one observer, one doubt
    assert view.on_digest(dg("QmMe", 3, inc=2), 1.5).accepted
    outcome = view.on_suspect_notice(notice(C, "QmMe", 3, inc=2), 2.0)
    assert PublishRefute(3) in outcome.events
    assert (view.doubt, view.multiplier) == (2, 1)
    view.tick(12.0)
    assert view.doubt == 0


def test_a_stranger_suspecting_us_raises_no_doubt() -> None:
    view = cluster(X, config=CFG)
    outcome = view.on_suspect_notice(notice("QmStranger", "QmMe"), 0.0)
    assert outcome.rejection is not None and view.doubt == 0
