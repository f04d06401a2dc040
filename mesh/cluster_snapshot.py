"""The pull protocol's view: the snapshot we answer with, and how a pulled one is merged.

A node that joins, or heals from a partition, pulls a peer's view rather than waiting for
every member's next heartbeat; a view too large for one snapshot comes in pages, in the
order of member ids (``build``'s ``after`` and ``limit``), each merged as it arrives and the
suspicions they carry at the end (``split_page``). Rule 12 of ``mesh.cluster_view``,
carried out here:

12. Snapshots carry signed statements, not the responder's word. Each entry is the
    member's own digest (and leave), and each suspicion an observer's notice, all as their
    authors signed them (``mesh.signed``); the view applies them as if they had come from
    the topic: digests first, then leaves, then notices. A responder can thus neither forge
    nor advance what a member says of itself, nor invent observers; a stale snapshot can
    neither resurrect nor rewind a member (only newer statements count). Notices carried
    in a snapshot (older than ``max_message_age`` are dropped on decoding) make a member
    SUSPECT, never DEAD: a suspicion resting on carried notices alone has no deadline, for
    nobody re-gossips them and the suspect may never hear of them to refute. It waits for
    the member's next statement, which answers it, or for evidence of our own or a notice
    on the topic, from which its timer starts (memberlist's mergeState: "prefer to
    suspect"). A member new to us that the responder holds DEAD or LEFT is not taken in:
    the responder's word cannot make it dead, nor should it make it alive to us, for a
    member that died before we joined would then stay listed until its silence, which in
    a large cluster takes hours (``ClusterConfig.refresh_crowd``).

The wire form, and the verification of every carried statement, is ``mesh.snapshot_codec``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math

from mesh.cluster_events import Event, Outcome
from mesh.cluster_roster import MemberRecord, Roster
from mesh.cluster_suspicions import Suspicions
from mesh.cluster_transitions import ALIVE, DEAD, LEFT, SUSPECT
from mesh.messages import MemberEntry, SignedNotice, ViewSnapshot
from mesh.rejection import Rejection, RejectReason
from mesh.view_bounds import JoinGate
from mesh.view_summary import bucket_of

__all__ = ["VOUCHERS", "Snapshots", "split_page"]

# Responders that must list a member alive before it counts (rule 2, certified members).
VOUCHERS = 2


def split_page(page: ViewSnapshot) -> tuple[ViewSnapshot, tuple[MemberEntry, ...]]:
    """A pulled page as what to merge at once (its statements but the notices) and the
    entries whose notices wait until the pull's last page: a notice counts only once its
    observer is a member, and the observer's own entry may come in a later page. Merging
    each page at once and then a snapshot of the waiting entries (their digests and leaves
    already in, no-ops) applies a paged view as if it had come whole."""
    waiting = tuple(entry for entry in page.members if entry.suspicions)
    if not waiting:
        return page, ()
    now = tuple(dataclasses.replace(entry, suspicions=()) for entry in page.members)
    return dataclasses.replace(page, members=now), waiting


class Snapshots:
    def __init__(self, roster: Roster, suspicions: Suspicions, joins: JoinGate) -> None:
        self.self_id = roster.self_id
        self.config = roster.config
        self._roster = roster
        self._suspicions = suspicions
        self._joins = joins

    def build(
        self,
        now: float,
        after: str = "",
        limit: int | None = None,
        buckets: frozenset[int] | None = None,
    ) -> ViewSnapshot:
        """One page of our view for the pull protocol, as the signed statements we hold:
        the members whose ids sort after ``after`` (and fall in ``buckets``, if given:
        ``mesh.view_summary``), at most ``limit`` of them (``encode_snapshot`` leaves out
        what we hold no envelope of, and ends the page where the size limit falls). When
        ``limit`` left members out, ``next_after`` says so."""
        records = self._roster.records
        ids = sorted(records)
        if buckets is not None:
            ids = [peer for peer in ids if bucket_of(peer) in buckets]
        first = bisect.bisect_right(ids, after) if after else 0
        last = len(ids) if limit is None else min(len(ids), first + max(1, limit))
        entries = []
        for peer in ids[first:last]:
            record = records[peer]
            suspicions: tuple[SignedNotice, ...] = ()
            if record.state in (SUSPECT, DEAD) and record.suspicion is not None:
                # Receivers drop notices past max_message_age (mesh.snapshot_codec): so do we.
                oldest = math.floor((now - self.config.max_message_age) * 1000.0)
                signed = record.suspicion.signed
                suspicions = tuple(
                    signed[o] for o in sorted(signed) if signed[o].notice.sent_at_ms >= oldest
                )
            entries.append(
                MemberEntry(
                    digest=record.digest,
                    state=record.state,
                    statement=record.statement,
                    leave=record.leave if record.state is LEFT else None,
                    leave_statement=record.leave_statement if record.state is LEFT else b"",
                    suspicions=suspicions,
                )
            )
        return ViewSnapshot(
            responder_id=self.self_id,
            sent_at_ms=math.floor(now * 1000.0),
            members=tuple(entries),
            next_after=ids[last - 1] if last < len(ids) else "",
        )

    def merge(self, snapshot: ViewSnapshot, now: float) -> Outcome:
        """Apply a pulled view: its signed statements, as if from the topic (rule 12)."""
        via = f"via snapshot from {snapshot.responder_id}"
        events: list[Event] = []
        dropped: list[Rejection] = []
        # Digests first, so that observers are members before their notices are weighed.
        for entry in snapshot.members:
            outcome = self._merge_digest(entry, now, via, snapshot.responder_id)
            events += outcome.events
            if outcome.rejection is not None and outcome.rejection.reason is not (
                RejectReason.REPLAYED
            ):
                dropped.append(outcome.rejection)
        for entry in snapshot.members:
            record = self._roster.records.get(entry.digest.node_id)
            leave = entry.leave
            if record is None or leave is None or leave.key <= record.key:
                continue
            events += self._roster.apply_leave(record, leave, entry.leave_statement, now, via)
        for entry in snapshot.members:
            for signed in entry.suspicions:
                outcome = self._suspicions.on_notice(
                    signed.notice, now, signed.statement, via, carried=True
                )
                events += outcome.events
                if outcome.rejection is not None:
                    dropped.append(outcome.rejection)
        return Outcome(tuple(events), dropped=tuple(dropped))

    def _merge_digest(self, entry: MemberEntry, now: float, via: str, responder: str) -> Outcome:
        peer = entry.digest.node_id
        # Our own statements: we know better than anyone.
        if peer == self.self_id:
            return Outcome()
        record = self._roster.records.get(peer)
        if record is None:
            # A member the responder holds dead, or gone, is not listed alive on its word
            # either (one that left by rule 9 has no leave statement to carry).
            if entry.state in (DEAD, LEFT) or self._roster.is_buried(peer, entry.digest.key):
                return Outcome()
            refused = self._joins.admit(len(self._roster.records), now)
            if refused is not None:
                return Outcome(rejection=refused)
            self._roster.tombstones.pop(peer, None)
            events = self._roster.join(entry.digest, now, via)
            joined = self._roster.records[peer]
            joined.statement = entry.statement
            self._vouch(joined, entry, responder)
            return Outcome(tuple(events))
        self._vouch(record, entry, responder)
        if entry.digest.key <= record.key:
            return Outcome()
        return Outcome(
            tuple(
                self._roster.accept_digest(
                    record, entry.digest, now, via, statement=entry.statement
                )
            )
        )

    def _vouch(self, record: MemberRecord, entry: MemberEntry, responder: str) -> None:
        """Rule 2 where members are certified: a member two responders list alive counts
        as one heard on the topic. One alone could list a member that died long ago (its
        last signed digest carries no deadline), to stretch our n or win it our election."""
        if record.firsthand or not self.config.certified_members or entry.state is not ALIVE:
            return
        voucher = self._roster.records.get(responder)
        if voucher is None or voucher.state not in (ALIVE, SUSPECT):
            return  # only live members vouch: a joiner may pull its bootstrap peer first
        record.vouched.add(responder)
        if len(record.vouched) >= VOUCHERS:
            record.firsthand = True
            record.vouched.clear()
