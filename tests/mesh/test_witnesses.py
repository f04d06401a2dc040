"""Rule 7's witnesses: other members' refused dials, counted only where members are
certified, only from the topic, only while we hold no connection, and only so many."""

from __future__ import annotations

import dataclasses

from mesh.cluster_events import PublishSuspect
from mesh.cluster_transitions import Cause
from mesh.digest import decode_gossip, encode_gossip
from mesh.messages import SuspectNotice, Version
from mesh.sequencer import Sequencer
from tests.mesh.test_cluster_view import (
    ALIVE,
    CFG,
    DEAD,
    QUIET,
    START,
    SUSPECT,
    B,
    C,
    D,
    X,
    cluster,
    dg,
    last,
    notice,
    state,
)

GRACE = CFG.refused_grace
OPEN = dataclasses.replace(QUIET, refusal_witnesses=0)  # no admission policy: trust nobody


def refused(observer: str, suspect: str = X, seq: int = 1) -> SuspectNotice:
    return SuspectNotice(observer, suspect, START, 0, seq, sent_at_ms=START, refused=True)


def test_two_witnesses_make_a_suspect_dead_after_the_grace_not_the_suspicion() -> None:
    view = cluster(X, B, C, D, config=QUIET)  # test preset: suspicion min 4 s
    view.on_suspect_notice(refused(B), 1.0)
    assert state(view) is SUSPECT
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT  # one witness is not enough
    view.on_suspect_notice(refused(C), 1.3)
    assert view.next_deadline() == 1.3 + GRACE
    view.tick(1.3 + GRACE - 0.001)
    assert state(view) is SUSPECT
    view.tick(1.3 + GRACE)
    assert state(view) is DEAD
    assert last(view).cause is Cause.SUSPICION_TIMEOUT


def test_an_open_cluster_counts_no_witness() -> None:
    # Identities are free there: two minted members' word must not kill anyone early.
    view = cluster(X, B, C, D, config=OPEN)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT
    assert view.next_deadline() == 1.0 + QUIET.suspicion_timeout(5, 1)


def test_a_witness_counts_once_however_often_it_says_so() -> None:
    view = cluster(X, B, C, D, config=QUIET)
    for at in (1.0, 1.1, 1.2):
        view.on_suspect_notice(refused(B), at)
    view.tick(5.0)  # past any grace, before the lone observer's suspicion timeout
    assert state(view) is SUSPECT


def test_notices_carried_in_a_snapshot_are_no_witnesses() -> None:
    source = cluster(X, B, C, D, config=QUIET)
    source.on_suspect_notice(refused(B), 1.0, statement=b"b")
    source.on_suspect_notice(refused(C), 1.0, statement=b"c")
    fresh = cluster(X, B, C, D, config=QUIET)
    for entry in source.snapshot(1.0).members:
        for signed in entry.suspicions:
            fresh.on_suspect_notice(signed.notice, 2.0, signed.statement, carried=True)
    fresh.tick(10.0)
    assert state(fresh) is SUSPECT  # held: carried notices make nobody dead (rule 12)
    # A plain notice on the topic starts the suspicion's clock; the carried refusals still
    # count for nothing, so it runs the whole suspicion timeout.
    fresh.on_suspect_notice(notice(D, X), 10.0)
    fresh.tick(10.0 + GRACE)
    assert state(fresh) is SUSPECT


def test_our_open_connection_outweighs_the_witnesses() -> None:
    view = cluster(X, B, C, D, config=QUIET)
    view.on_connected(X, 0.5)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT


def test_a_new_connection_clears_the_witnesses_heard_before() -> None:
    view = cluster(X, B, C, D, config=QUIET)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_connected(X, 1.05)  # it is listening after all
    view.on_disconnected(X, 1.06)
    view.on_suspect_notice(refused(C), 1.07)
    view.tick(1.07 + GRACE)
    assert state(view) is SUSPECT  # B's refusal predates the connection: one witness left


def test_the_member_s_newer_statement_answers_the_witnesses() -> None:
    # Liars among the certified can make a member dead in our view; its next statement
    # brings it back (rule 4), and a refutation is published at once when it hears them.
    view = cluster(X, B, C, D, config=QUIET)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.on_digest(dg(X, 2, inc=1), 1.05)
    view.tick(1.0 + GRACE)
    assert state(view) is ALIVE
    assert last(view).cause is Cause.REFUTED


def test_witnesses_about_an_older_statement_count_for_nothing() -> None:
    view = cluster(X, B, C, D, config=QUIET)
    view.on_digest(dg(X, 5), 0.5)  # we hold seq 5; their notices name seq 1
    view.on_suspect_notice(refused(B, seq=1), 1.0)
    view.on_suspect_notice(refused(C, seq=1), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is ALIVE


def test_a_refused_dial_is_published_once_as_a_witness_while_witnesses_are_wanted() -> None:
    view = cluster(X, B, C, D, config=QUIET)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    # Two witnesses known: ours goes out as a plain confirmation (rule 6), not a witness's.
    assert [e for e in view.on_refused(X, 1.01).events if isinstance(e, PublishSuspect)] == [
        PublishSuspect(X, Version(START, 0, 1))
    ]
    other = cluster(X, B, C, D, config=QUIET)
    first = other.on_refused(X, 1.0).events
    assert PublishSuspect(X, Version(START, 0, 1), refused=True) in first
    assert other.on_refused(X, 1.02).events == ()  # once


def test_an_open_cluster_publishes_no_witness_notice() -> None:
    view = cluster(X, B, C, D, config=OPEN)
    view.on_disconnected(X, 0.2)
    assert view.on_refused(X, 0.21).events == ()
    assert [e for e in cluster(X, B, config=OPEN).on_refused(X, 1.0).events if
            isinstance(e, PublishSuspect)] == [PublishSuspect(X, Version(START, 0, 1))]  # fmt: skip


def test_the_refused_flag_survives_the_wire_and_its_signature_covers_it() -> None:
    notice = Sequencer(B, START).suspect(X, Version(START, 0, 1), START / 1000.0, refused=True)
    data = encode_gossip(notice)
    decoded = decode_gossip(data, B, START / 1000.0, config=QUIET)
    assert decoded == notice and isinstance(decoded, SuspectNotice) and decoded.refused
    plain = encode_gossip(dataclasses.replace(notice, refused=False))
    assert plain != data  # a relay cannot turn one into the other without a new signature
