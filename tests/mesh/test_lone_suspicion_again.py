"""A suspicion nobody confirmed is published once more, halfway to its deadline.

The 30-node devnet (2026-12-04, 1a4b681): node 3, thawed after the bench's SIGSTOP, found
its connections reset and suspected 29 members at once. Every member still held node 3
dead or suspect, so its notices were refused (a suspect's word counts for nothing), and the
two members whose digests no pull could show newer never heard they were suspected: their
suspicions ran out in node 3's view at the unconfirmed maximum, 13 s later. Published once
more when half that time is gone, the notice reaches a suspect that is alive and it
refutes; a dead one loses nothing but one message.
"""

from __future__ import annotations

from mesh.cluster_events import PublishSuspect
from mesh.cluster_view import ClusterView
from mesh.messages import MemberState, Version
from tests.mesh.test_cluster_view import ME, QUIET, START, B, C, X, dg, feed, notice, pulled, state

# QUIET: unconfirmed suspicion 8 s (K = 2 needs two confirmations for the 4 s minimum).


def _lone() -> ClusterView:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C, X):
        assert view.on_digest(dg(node), 0.0).accepted
    first = _published(list(view.on_disconnected(X, 0.0).events))
    assert first == [PublishSuspect(X, Version(START, 0, 1))]
    return view


def _published(events: list[object]) -> list[PublishSuspect]:
    return [e for e in events if isinstance(e, PublishSuspect)]


def test_a_lone_suspicion_is_published_again_halfway() -> None:
    view = _lone()
    assert view.next_deadline() == 4.0  # half of the unconfirmed 8 s
    assert _published(view.tick(3.9)) == []
    assert _published(view.tick(4.0)) == [PublishSuspect(X, Version(START, 0, 1))]
    # Once only; the deadline itself is unchanged.
    assert _published(view.tick(5.0)) == []
    assert view.next_deadline() == 8.0
    view.tick(8.0)
    assert state(view) is MemberState.DEAD


def test_a_confirmed_suspicion_is_not_published_again() -> None:
    view = _lone()
    view.on_suspect_notice(notice(B, X), 1.0)
    assert _published(view.tick(4.0)) == []
    assert _published(view.tick(6.0)) == []


def test_a_suspicion_we_only_heard_of_is_not_ours_to_publish() -> None:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C, X):
        view.on_digest(dg(node), 0.0)
    view.on_suspect_notice(notice(B, X), 0.0)
    assert _published(view.tick(4.0)) == []
    assert _published(view.tick(6.0)) == []


def test_a_starved_observers_unpublished_suspicion_stays_unpublished() -> None:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C, X):
        view.on_digest(dg(node), 0.0)
    view.set_starved(True, 0.0)
    assert _published(list(view.on_ping_failed(X, 0.0).events)) == []
    assert _published(view.tick(20.0)) == []


def test_the_refutation_the_second_notice_brings_ends_it() -> None:
    view = _lone()
    assert _published(view.tick(4.0))
    view.on_digest(dg(X, 1, inc=1), 4.5)  # X heard it and refuted
    assert state(view) is MemberState.ALIVE
    view.tick(8.0)
    assert state(view) is MemberState.ALIVE


def test_not_after_our_dial_was_refused() -> None:
    # Nothing listens there: it dies after the short grace, no refutation is coming.
    view = _lone()
    view.on_refused(X, 0.5)
    assert _published(view.tick(0.55)) == []
    view.tick(0.5 + QUIET.refused_grace)
    assert state(view) is MemberState.DEAD


def test_a_notice_carried_in_a_pulled_view_does_not_cancel_it() -> None:
    # A member serving its notice only in pull answers confirms our suspicion, but the
    # suspect never heard it on the topic: ours still goes out again (attacker review).
    source = ClusterView(B, QUIET)
    for node in (B, X, C):
        feed(source, dg(node), 0.0)
    feed(source, notice(C, X), 0.0)
    view = _lone()
    view.merge_snapshot(pulled(source), 0.5)
    assert view.member(X).suspected_by == {ME, C}  # type: ignore[union-attr]
    deadline = QUIET.suspicion_timeout(4, 1)
    assert _published(view.tick(deadline / 2)) == [PublishSuspect(X, Version(START, 0, 1))]


def test_a_starved_observer_does_not_say_its_timing_judgement_again() -> None:
    view = ClusterView(ME, QUIET)
    for node in (ME, B, C, X):
        view.on_digest(dg(node), 0.0)
    assert _published(list(view.on_ping_failed(X, 0.0).events))  # published: not starved
    view.set_starved(True, 1.0)
    # Our own multiplier stretches the deadline to 8 s x 4; halfway is 16 s.
    for at in (4.0, 16.0, 31.9):
        assert _published(view.tick(at)) == []
