"""The view's suspicions: raising them on evidence, confirming, sharing and answering them.

SWIM's suspicion mechanism with Lifeguard's confirmations, as memberlist's ``state.go``
handles ``suspectNode``: early-return guards, one comment each, then a transition looked up
in ``TRANSITIONS``. Evidence is our own (``observe``: a closed connection, a failed ping,
silence, a refused dial) or another member's signed notice (``on_notice``); a suspicion of
ourselves is answered with a refutation. Each suspicion's bookkeeping and deadline is a
``Suspicion`` (``mesh.suspicion``); the clock that turns it into death is
``mesh.cluster_timers``.

Rules of ``mesh.cluster_view`` carried out here:

3. Suspicion is evidence against a Version, its basis: our own evidence (DISCONNECTED,
   PING_FAILED, SILENCE) is against the newest Version we hold, a ``SuspectNotice`` against
   the one its observer held, but never beyond what the suspect has said itself as far as we
   know (the newest Version we hold): a basis claimed further ahead could never be answered,
   and one notice would make a live member dead for good. Evidence older than what we hold
   is ignored (SWIM 4.2: "ignore old incarnations"). Only alive members count as observers
   (NOT_MEMBER otherwise: minted identities confirm nothing), in an open cluster only those
   heard on the topic (a pulled view may list minted ones the suspect never heard of, and
   so cannot refute), each once, at most ``max_observers`` others and ourselves; those
   after the first are confirmations.
5. Self. We never suspect ourselves. A notice suspecting us (from the topic or carried in
   a snapshot), signed by any member of our view, alive or not (others may hold it alive
   and count it), returns ``PublishRefute(incarnation + 1)``, unless we are leaving, or it is
   about an earlier life of ours or an incarnation we have already refuted. A basis beyond
   anything we said (a later life, a higher incarnation) is a lie about us: it is refuted at
   our own incarnation, so no notice can make us jump, or overflow, our incarnation.
6. Sharing. A suspicion we originate, or confirm by our own evidence, is published once as
   ``PublishSuspect``, unless the originator and K confirmations (Lifeguard's K) are known
   already: then ours would change nobody's timeout. Our refused dial is published once
   more, as a witness's notice (rule 7), while fewer than ``refusal_witnesses`` are known.
   Others' notices are not re-published: GossipSub already floods them.
9. Stopping. Failure evidence about a member whose last digest said ``stopping`` means it
   left (STOPPED): a graceful shutdown whose leave notice was lost still shows as left.

Rule 8's part here (``mesh.awareness``): while starved our timing evidence is not
published, and when we recover the suspicions resting on it alone restart their clock or,
never published, are withdrawn (``recover``).
"""

from __future__ import annotations

from mesh.awareness import Awareness
from mesh.cluster_config import expected_confirmations
from mesh.cluster_events import Event, Outcome, PublishRefute, PublishSuspect
from mesh.cluster_roster import MemberRecord, Roster
from mesh.cluster_transitions import ALIVE, LEFT, SUSPECT, TIMING_EVIDENCE, Cause
from mesh.messages import SignedNotice, SuspectNotice, Version
from mesh.model import Status
from mesh.rejection import Rejection, RejectReason
from mesh.suspicion import Suspicion

__all__ = ["Suspicions"]


class Suspicions:
    """Failure evidence about the members of ``roster``, judged with our ``awareness``."""

    def __init__(self, roster: Roster, awareness: Awareness) -> None:
        self.self_id = roster.self_id
        self.config = roster.config
        self._roster = roster
        self._awareness = awareness

    def on_notice(
        self,
        notice: SuspectNotice,
        now: float,
        statement: bytes = b"",
        detail: str = "",
        *,
        carried: bool = False,
    ) -> Outcome:
        """A signed notice, from the topic or ``carried`` in a pulled snapshot."""
        # Our own notice, delivered back to us by GossipSub: already counted.
        if notice.observer_id == self.self_id:
            return Outcome(note="own notice")
        observer = self._roster.records.get(notice.observer_id)
        # Rule 5: about us, answer it, whatever state we hold its observer in. Others may
        # hold it alive and count the notice: two members that suspected each other within
        # a second ignored each other's notice and both died elsewhere, unrefuted (the
        # 20 % loss soak, 2026-12-04). A fresh identity still makes us say nothing (each
        # refutation is a publish that skips the publish budget).
        if notice.suspect_id == self.self_id and observer is not None:
            events = self._refute(notice.basis, notice.observer_id, now)
            return Outcome(tuple(events), note="" if events else "suspicion already refuted")
        # Rule 3: only alive members observe; a fresh identity confirms nothing.
        if observer is None or observer.state is not ALIVE:
            state = "unknown" if observer is None else str(observer.state)
            return Outcome(
                rejection=Rejection(
                    RejectReason.NOT_MEMBER, f"suspicion by {notice.observer_id} ({state})"
                )
            )
        # Rule 3, open clusters: only members heard on the topic observe. One a responder
        # listed may be minted, and the suspect, which never heard of it, could not refute
        # its notice (rule 5). A carried notice is no error: it just does not count.
        if not (observer.firsthand or self.config.certified_members):
            why = f"suspicion by {notice.observer_id}, not heard on the topic"
            if carried:
                return Outcome(note=why)
            return Outcome(rejection=Rejection(RejectReason.NOT_MEMBER, why))
        record = self._roster.records.get(notice.suspect_id)
        # Rule 2: a suspect we never heard of.
        if record is None:
            return Outcome(note=f"suspect {notice.suspect_id} unknown")
        # Rule 3: never beyond what the suspect itself has said.
        basis = min(notice.basis, record.key)
        signed = SignedNotice(notice, statement) if statement else None
        events = self._suspect(
            record,
            notice.suspect_id,
            notice.observer_id,
            basis,
            Cause.SUSPECT_NOTICE,
            now,
            detail,
            signed=signed,
            carried=carried,
            refused=notice.refused,
        )
        return Outcome(tuple(events))

    def observe(self, peer: str, cause: Cause, now: float, *, vouch: bool = True) -> list[Event]:
        """Our own failure evidence about ``peer`` (rules 3, 6, 8, 9); ``vouch``: a
        refusal others may count as a witness's (``ClusterView.on_refused``)."""
        record = self._roster.records.get(peer)
        # Rule 2, and we never suspect ourselves.
        if record is None or peer == self.self_id:
            return []
        # Already dead or gone: nothing more to learn.
        if record.state not in (ALIVE, SUSPECT):
            return []
        quiet = self._awareness.starved and cause in TIMING_EVIDENCE
        suspicion = record.suspicion
        if suspicion is not None and self.self_id in suspicion.bases:
            # We already count among the observers; note the new kind of evidence, and
            # publish now if all we had before was unpublished starved timing evidence.
            suspicion.local.add(cause)
            suspicion.note_refused(cause, now)
            if self._says_refused(suspicion, cause, vouch):
                # What we published before was a judgement; this is a kernel's answer that
                # others may count (rule 7: witnesses).
                suspicion.said_refused = True
                suspicion.quiet = False
                return [PublishSuspect(peer, suspicion.bases[self.self_id], refused=True)]
            if suspicion.quiet and not quiet:
                suspicion.quiet = False
                if not self._confirmed_enough(suspicion):
                    return [PublishSuspect(peer, suspicion.bases[self.self_id])]
            return []
        events = self._suspect(record, peer, self.self_id, record.key, cause, now)
        suspicion = record.suspicion
        if suspicion is None or self.self_id not in suspicion.bases:
            return events  # it left instead (rule 9)
        suspicion.local.add(cause)
        suspicion.note_refused(cause, now)
        suspicion.quiet = quiet
        refused = self._says_refused(suspicion, cause, vouch)
        suspicion.said_refused = refused
        if not quiet and (refused or not self._confirmed_enough(suspicion)):
            events.append(PublishSuspect(peer, record.key, refused=refused))
        return events

    def _says_refused(self, suspicion: Suspicion, cause: Cause, vouch: bool) -> bool:
        """Whether our refused dial should be published as a witness's notice (rules 6
        and 7): once, while witnesses are trusted and fewer than needed are known, and
        only for a dial at an address we vouch for."""
        needed = self.config.refusal_witnesses
        return (
            cause is Cause.REFUSED
            and vouch
            and needed > 0
            and not suspicion.said_refused
            and len(suspicion.witnesses) < needed
        )

    def _confirmed_enough(self, suspicion: Suspicion) -> bool:
        """Whether the others' evidence alone already holds the suspicion at its minimum
        timeout, so that publishing ours would change nobody's timer (rule 6). memberlist
        stops re-broadcasting at K confirmations too. Without this, every observer of a
        failure published: n - 1 messages per suspicion, and on a loaded 20-node devnet
        the suspicions of missed pings swamped the topic (2026-11-28)."""
        others = len(suspicion.bases) - (1 if self.self_id in suspicion.bases else 0)
        wanted = expected_confirmations(
            self._roster.known_live_count(), self.config.suspicion_confirmations
        )
        return others >= wanted + 1

    def _suspect(
        self,
        record: MemberRecord,
        peer: str,
        observer: str,
        basis: Version,
        cause: Cause,
        now: float,
        detail: str = "",
        *,
        signed: SignedNotice | None = None,
        carried: bool = False,
        refused: bool = False,
    ) -> list[Event]:
        """Evidence from ``observer`` that ``peer`` failed after ``basis`` (rules 3, 7, 9,
        12); ``refused``: the observer's notice says its own dial was refused."""
        # SWIM: ignore evidence older than the newest statement we hold.
        if basis < record.key:
            return []
        # Dead or left: a suspicion adds nothing.
        if record.state not in (ALIVE, SUSPECT):
            return []
        label = detail or f"by {observer}"
        # Rule 9: it said it was stopping, so it is gone on purpose.
        if record.digest.status is Status.STOPPING:
            record.suspicion = None
            return self._roster.move(record, peer, Cause.STOPPED, now, f"{cause} {label}")
        if record.state is SUSPECT and record.suspicion is not None:
            # A confirmation, counted once per observer (Lifeguard IV-B), up to a bound.
            suspicion = record.suspicion
            known = suspicion.bases.get(observer)
            # The bound holds others' notices; our own evidence always counts (one more).
            others = len(suspicion.bases) - (self.self_id in suspicion.bases)
            if known is None and observer != self.self_id and others >= self.config.max_observers:
                return []
            was_held = suspicion.held()
            suspicion.bases[observer] = basis if known is None else max(known, basis)
            if signed is not None and suspicion.bases[observer] == basis:
                suspicion.signed[observer] = signed
            if carried and known is None:
                suspicion.carried.add(observer)
            elif not carried:
                suspicion.carried.discard(observer)
            if was_held and not suspicion.held():
                # First evidence beyond carried notices: the timer starts now (rule 12).
                suspicion.since = now
            self._witness(suspicion, peer, observer, now, carried=carried, refused=refused)
            return []
        record.suspicion = Suspicion(
            since=now, bases={observer: basis}, network=self._awareness.network
        )
        if signed is not None:
            record.suspicion.signed[observer] = signed
        if carried:
            record.suspicion.carried.add(observer)
        self._witness(record.suspicion, peer, observer, now, carried=carried, refused=refused)
        return self._roster.move(record, peer, cause, now, label)

    def _witness(
        self,
        suspicion: Suspicion,
        peer: str,
        observer: str,
        now: float,
        *,
        carried: bool,
        refused: bool,
    ) -> None:
        """Rule 7: count ``observer`` as a witness of a refused dial to ``peer``."""
        # Ours is refused_at, not a witness. (Where members are not certified the count
        # is never reached: Suspicion.witnessed_at.)
        if not refused or observer == self.self_id:
            return
        # Rule 12: a carried notice was heard by nobody's clock but its responder's.
        if carried:
            return
        # Our own open connection, answered ping or dial outweighs anyone's refused dial.
        if peer in self._roster.connected or suspicion.listening:
            return
        # Witnesses this member has already answered (rule 4) are not believed again soon.
        record = self._roster.records.get(peer)
        if record is not None and record.discredited.get(observer, -1.0) > now:
            return
        suspicion.witnesses.setdefault(observer, now)

    def _refute(self, basis: Version, observer: str, now: float) -> list[Event]:
        """Rule 5: answer a suspicion of ourselves with a higher incarnation."""
        me = self._roster.records.get(self.self_id)
        if me is not None:
            # We are leaving: let them.
            if me.state is LEFT:
                return []
            # About an earlier life of ours: our current digests already supersede it.
            if basis.start_time_ms < me.key.start_time_ms:
                return []
            # Beyond what we have said (a later life, a higher incarnation): a lie about
            # our current statement, answered as one, by one incarnation, whatever number
            # it names. Others hold it at what they heard from us (rule 3).
            basis = min(basis, me.key)
        # An incarnation we have already refuted.
        if basis.incarnation < self._roster.incarnation:
            return []
        self._roster.incarnation += 1
        # Others find us slow: doubt ourselves a little more (mesh.self_doubt).
        self._awareness.doubt.refuted(observer, now)
        self._awareness.refresh(now)
        return [PublishRefute(self._roster.incarnation)]

    def recover(self, now: float) -> list[Event]:
        """Rule 8: our clock is trustworthy again; re-judge what we judged while starved."""
        events: list[Event] = []
        for peer, record in list(self._roster.records.items()):
            suspicion = record.suspicion
            if record.state is not SUSPECT or suspicion is None:
                continue
            if not suspicion.rests_on_timing_of(self.self_id):
                continue
            if suspicion.quiet:
                record.suspicion = None
                record.last_heard = now
                events += self._roster.move(record, peer, Cause.LOCAL_RECOVERY, now)
            else:
                suspicion.since = now
        return events
