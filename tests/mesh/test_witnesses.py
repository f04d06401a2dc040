"""Rule 7's witnesses: other members' refused dials, counted only where members are
certified, only from the topic, only while we hold no connection, and only so many."""

from __future__ import annotations

import dataclasses

from mesh.cluster_config import CERTIFIED_WITNESSES, ClusterConfig
from mesh.cluster_events import PublishSuspect
from mesh.cluster_timers import STARTING_WITNESS_STRETCH
from mesh.cluster_transitions import Cause
from mesh.cluster_view import ClusterView
from mesh.digest import decode_gossip, encode_gossip
from mesh.messages import SuspectNotice, Version
from mesh.model import Status
from mesh.sequencer import Sequencer
from tests.mesh.test_cluster_view import (
    ALIVE,
    CFG,
    DEAD,
    ME,
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
# Members certified by an admission policy: the gossip service sets CERTIFIED_WITNESSES.
CERT = dataclasses.replace(QUIET, refusal_witnesses=CERTIFIED_WITNESSES)
OPEN = QUIET  # no admission policy: the default trusts nobody's refusal


def refused(observer: str, suspect: str = X, seq: int = 1) -> SuspectNotice:
    return SuspectNotice(observer, suspect, START, 0, seq, sent_at_ms=START, refused=True)


def lie(observer: str, *, inc: int = 0, seq: int = 1, start: int = START) -> SuspectNotice:
    return SuspectNotice(observer, X, start, inc, seq, sent_at_ms=START, refused=True)


def test_two_witnesses_make_a_suspect_dead_after_the_grace_not_the_suspicion() -> None:
    view = cluster(X, B, C, D, config=CERT)  # test preset: suspicion min 4 s
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
    assert view.next_deadline() == 1.0 + OPEN.suspicion_timeout(5, 1)


def test_a_witness_counts_once_however_often_it_says_so() -> None:
    view = cluster(X, B, C, D, config=CERT)
    for at in (1.0, 1.1, 1.2):
        view.on_suspect_notice(refused(B), at)
    view.tick(5.0)  # past any grace, before the lone observer's suspicion timeout
    assert state(view) is SUSPECT


def test_notices_carried_in_a_snapshot_are_no_witnesses() -> None:
    source = cluster(X, B, C, D, config=CERT)
    source.on_suspect_notice(refused(B), 1.0, statement=b"b")
    source.on_suspect_notice(refused(C), 1.0, statement=b"c")
    fresh = cluster(X, B, C, D, config=CERT)
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
    view = cluster(X, B, C, D, config=CERT)
    view.on_connected(X, 0.5)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT


def test_a_new_connection_clears_the_witnesses_heard_before() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_connected(X, 1.05)  # it is listening after all
    view.on_disconnected(X, 1.06)
    view.on_suspect_notice(refused(C), 1.07)
    view.tick(1.07 + GRACE)
    assert state(view) is SUSPECT  # B's refusal predates the connection: one witness left


def test_the_member_s_newer_statement_answers_the_witnesses() -> None:
    # Liars among the certified can make a member dead in our view; its next statement
    # brings it back (rule 4), and a refutation is published at once when it hears them.
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.on_digest(dg(X, 2, inc=1), 1.05)
    view.tick(1.0 + GRACE)
    assert state(view) is ALIVE
    assert last(view).cause is Cause.REFUTED


def test_witnesses_about_an_older_statement_count_for_nothing() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_digest(dg(X, 5), 0.5)  # we hold seq 5; their notices name seq 1
    view.on_suspect_notice(refused(B, seq=1), 1.0)
    view.on_suspect_notice(refused(C, seq=1), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is ALIVE


def test_a_refused_dial_is_published_once_as_a_witness_while_witnesses_are_wanted() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    # Two witnesses known: ours goes out as a plain confirmation (rule 6), not a witness's.
    assert [e for e in view.on_refused(X, 1.01).events if isinstance(e, PublishSuspect)] == [
        PublishSuspect(X, Version(START, 0, 1))
    ]
    other = cluster(X, B, C, D, config=CERT)
    first = other.on_refused(X, 1.0).events
    assert PublishSuspect(X, Version(START, 0, 1), refused=True) in first
    assert other.on_refused(X, 1.02).events == ()  # once


def test_a_refusal_we_do_not_vouch_for_is_ours_alone() -> None:
    # A dial at the address a member we never met advertised (adapters/suspect_checks.py):
    # it makes the member dead here after the grace, and is published as a plain
    # suspicion, never as a witness's.
    view = cluster(X, B, C, D, config=CERT)
    events = view.on_refused(X, 1.0, vouch=False).events
    assert [e for e in events if isinstance(e, PublishSuspect)] == [
        PublishSuspect(X, Version(START, 0, 1))
    ]
    assert view.next_deadline() == 1.0 + GRACE
    view.tick(1.0 + GRACE)
    assert state(view) is DEAD
    assert "our dial-back refused" in last(view).detail


def test_a_refusal_we_vouch_for_after_one_we_do_not_is_published_as_a_witness() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_disconnected(X, 0.9)
    unvouched = view.on_refused(X, 1.0, vouch=False).events
    assert not [e for e in unvouched if isinstance(e, PublishSuspect) and e.refused]
    assert view.on_refused(X, 1.01).events == (
        PublishSuspect(X, Version(START, 0, 1), refused=True),
    )


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


def test_the_default_trusts_no_witness() -> None:
    # Fail-safe: a view built without an admission policy in mind counts nobody's refusal.
    assert ClusterConfig().refusal_witnesses == 0


def test_witnesses_the_member_answered_cannot_kill_it_again_at_once() -> None:
    # Two certified liars: one kill, then the member refutes; the same pair's next lies
    # about the refuted incarnation are not believed (one kill per window, not per refute).
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(lie(B, inc=0, seq=1), 1.0)
    view.on_suspect_notice(lie(C, inc=0, seq=1), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is DEAD  # the documented price, once
    view.on_digest(dg(X, 2, inc=1), 1.2)  # X refutes
    view.on_suspect_notice(lie(B, inc=1, seq=2), 1.21)
    view.on_suspect_notice(lie(C, inc=1, seq=2), 1.21)
    view.tick(1.21 + GRACE)
    assert state(view) is SUSPECT
    # Honest witnesses of a later crash are still believed.
    view.on_suspect_notice(lie(D, inc=1, seq=2), 1.3)
    view.on_suspect_notice(lie(ME, inc=1, seq=2), 1.3)  # our own notice is no witness
    view.tick(1.3 + GRACE)
    assert state(view) is SUSPECT  # one honest witness is not two


def test_a_new_life_forgets_which_witnesses_its_old_life_answered() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(lie(B, inc=0, seq=1), 1.0)
    view.on_suspect_notice(lie(C, inc=0, seq=1), 1.0)
    view.on_digest(dg(X, 2, inc=1), 1.05)  # answered: B and C discredited
    view.on_digest(dg(X, 1, start=START + 5000), 2.0)  # a restart: a new life
    view.on_suspect_notice(lie(B, seq=1, start=START + 5000), 3.0)
    view.on_suspect_notice(lie(C, seq=1, start=START + 5000), 3.0)
    view.tick(3.0 + GRACE)
    assert state(view) is DEAD


def test_our_answered_ping_or_dial_outweighs_the_witnesses() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_answered(X, 1.002)  # our dial-back connected: it listens
    view.on_suspect_notice(refused(C), 1.01)
    view.on_suspect_notice(refused(D), 1.01)
    view.tick(1.01 + GRACE)
    assert state(view) is SUSPECT


def test_a_starved_node_gives_the_member_longer_to_answer_witnesses() -> None:
    view = cluster(X, B, C, D, config=CERT)
    view.set_starved(True, 0.5)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT
    view.tick(1.0 + GRACE * CERT.awareness_max)
    assert state(view) is DEAD


def test_a_member_that_says_it_is_starved_gets_no_longer_to_answer_witnesses() -> None:
    # Its own word stretches a suspicion of it (mesh/awareness.py), not others' refused
    # dials: nothing listens at its address, however slow it said it was.
    view = cluster(config=CERT)
    for node in (X, B, C, D):
        reported = CERT.awareness_max - 1 if node == X else 0
        view.on_digest(dataclasses.replace(dg(node), local_health=reported), 0.0)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    assert view.next_deadline() == 1.0 + GRACE
    view.tick(1.0 + GRACE)
    assert state(view) is DEAD


def starting_view() -> ClusterView:
    """A certified view of ME whose own digest says it is starting, and X, B, C, D."""
    view = ClusterView(ME, CERT)
    view.on_digest(dg(ME, status=Status.STARTING), 0.0)
    for node in (X, B, C, D):
        view.on_digest(dg(node), 0.0)
    return view


def test_a_node_still_starting_stretches_the_witnesses_grace_at_most_twice() -> None:
    # Its lag is its own start's work, which holds back its own dial-back longer than any
    # grace (20-node bench, 2026-12-05: the newest node heard the notices 0.4 s late and
    # then waited 0.1 s x 8 more); the stretch bought no evidence, only a 1.3 s kill.
    view = starting_view()
    view.set_starved(True, 0.5)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    assert view.next_deadline() == 1.0 + GRACE * STARTING_WITNESS_STRETCH
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT
    view.tick(1.0 + GRACE * STARTING_WITNESS_STRETCH)
    assert state(view) is DEAD


def test_once_started_a_starved_node_stretches_the_witnesses_grace_again() -> None:
    view = starting_view()
    view.on_digest(dg(ME, seq=2), 0.2)  # our checks have all run: healthy
    view.set_starved(True, 0.5)
    view.on_suspect_notice(refused(B), 1.0)
    view.on_suspect_notice(refused(C), 1.0)
    view.tick(1.0 + GRACE)
    assert state(view) is SUSPECT
