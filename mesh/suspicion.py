"""One suspicion: who suspects a member on what basis, and when it makes the member dead.

Like memberlist's ``suspicion.go``, a suspicion counts its independent observers, each
once, and its timeout shrinks with their confirmations (Lifeguard IV-B,
``ClusterConfig.suspicion_timeout``). The record is pure bookkeeping; which evidence opens
or confirms a suspicion is ``mesh.cluster_suspicions``, and who runs the clock is
``mesh.cluster_timers``.

Rule 7 of ``mesh.cluster_view``, which ``deadline`` carries out:

7. Death. SUSPECT becomes DEAD once ``suspicion_timeout(n, confirmations)`` times the
   local-health multiplier has passed since the suspicion began (``mesh.cluster_config``),
   or ``refused_grace`` after our own dial to the member's address was refused (REFUSED):
   nothing listens there, a kernel's answer that no peer can forge for another, so it is
   trusted even when starved. It counts while no connection to the member is open, or
   while one looks open but our own ping on it has just gone unanswered (a killed
   process's reset not yet read). Nobody's notice carries it: each observer dials for itself
   (the adapter dials a suspect it is not connected to), so a liar's notice buys at most
   a dial that connects. Witnesses are the exception, in a cluster whose members an
   admission policy certifies (``refusal_witnesses`` > 0, set by the node only then): a
   notice may say that its observer's own dial was refused, and ``refusal_witnesses``
   such notices from distinct members, heard on the topic against the Version we hold
   while we hold no connection to the member, count as our own refusal, ``refused_grace``
   after the last of them times our multiplier: while we are starved our dial-back's
   answer may wait unread; at most twice while our own digest says we are starting (a
   start can be made to last, ``mesh.cluster_timers``): the 20-node
   bench's newest node, busy starting, heard the notices 0.4 s late and then waited
   0.1 s x 8 more: a kill seen everywhere in 1.3 s, not 0.7. In a large cluster most
   observers hold no link of their own to a crashed member and would wait
   out its suspicion: 12 s at 1,000 members (``devnet/simulator``). The price: that many
   admitted members lying together can make a live member dead in our view until its
   refutation (rule 4) arrives; an open cluster, where identities are free, never
   trusts a notice that far.

A suspicion resting on notices carried in pulled snapshots alone is ``held``: it has no
deadline (rule 12, ``mesh.cluster_snapshot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.cluster_config import ClusterConfig
from mesh.cluster_transitions import TIMING_EVIDENCE, Cause
from mesh.messages import SignedNotice, Version

__all__ = ["Suspicion"]


@dataclass(slots=True)
class Suspicion:
    since: float
    bases: dict[str, Version]  # observer -> the Version it suspects; first is the originator
    local: set[Cause] = field(default_factory=set)  # our own evidence, if we are an observer
    quiet: bool = False  # our evidence came while starved and was not published
    # observer -> its notice as it signed it: what a snapshot of ours may carry on.
    signed: dict[str, SignedNotice] = field(default_factory=dict)
    # Observers we know of only from notices carried in pulled snapshots (rule 12).
    carried: set[str] = field(default_factory=set)
    refused_at: float | None = None  # our first refused dial-back (rule 7)
    # Observers whose notices on the topic said their own dial was refused, and when we
    # heard each (rule 7: witnesses). Never from carried notices, never while we hold a
    # connection to the member.
    witnesses: dict[str, float] = field(default_factory=dict)
    said_refused: bool = False  # we published a notice saying our dial was refused
    # Our own ping or dial reached it during this suspicion: no witness counts any more.
    listening: bool = False
    # Our network score when it began (mesh.awareness): its deadline never shrinks below it.
    network: int = 0
    # Our notice went out a second time (``mesh.cluster_timers``: a lone suspicion).
    repeated: bool = False

    def held(self) -> bool:
        """Resting on carried notices alone: no deadline (rule 12)."""
        return bool(self.carried) and self.carried >= self.bases.keys()

    def repeat_at(self, deadline: float) -> float | None:
        """When our notice goes out once more (``mesh.cluster_timers``), or None: only a
        suspicion we published and nobody confirmed, halfway to ``deadline``; not after a
        refused dial (nothing listens: the grace is short and a refutation unlikely). Only
        observers heard on the topic count: a notice carried in a pulled view reached us,
        not the suspect, and one member serving it only there must not cancel the repeat."""
        heard_on_topic = len(self.bases.keys() - self.carried) - 1  # less ourselves
        if self.repeated or self.quiet or heard_on_topic > 0 or not self.local:
            return None
        if self.refused_at is not None:
            return None
        return self.since + (deadline - self.since) / 2

    def confirmations(self) -> int:
        return max(0, len(self.bases) - 1)

    def note_refused(self, cause: Cause, now: float) -> None:
        if cause is Cause.REFUSED and self.refused_at is None:
            self.refused_at = now

    def rests_on_timing_of(self, observer: str) -> bool:
        """Whether ``observer`` (we) is its only observer, on timing evidence alone (rule 8)."""
        return set(self.bases) == {observer} and self.local <= TIMING_EVIDENCE

    def deadline(
        self,
        config: ClusterConfig,
        n: int,
        multiplier: int,
        suspect_multiplier: int | None = None,
        known: int | None = None,
    ) -> float:
        """When the suspicion ends in death. ``multiplier`` is our local health's;
        ``suspect_multiplier`` (default: the same), ours with the suspect's own reported
        health added, stretches only the suspicion timeout: the suspect's word is no
        reason to doubt anybody's refused dial (rule 8, ``mesh.awareness``). ``known``: the
        live members we know of from any source (``ClusterConfig.suspicion_timeout``)."""
        timeout = config.suspicion_timeout(n, self.confirmations(), known)
        stretch = multiplier if suspect_multiplier is None else suspect_multiplier
        deadline = self.since + timeout * stretch
        if self.refused_at is not None:
            # Rule 7: a kernel's answer, not a judgement of time: no multiplier.
            deadline = min(deadline, self.refused_at + config.refused_grace)
        witnessed = self.witnessed_at(config.refusal_witnesses)
        if witnessed is not None:
            # Rule 7: as many admitted observers' refusals count as our own; but while we
            # are starved (rule 8) the member's answer may wait unread behind their word
            # (``mesh.cluster_timers`` passes at most 2 while we start).
            deadline = min(deadline, witnessed + config.refused_grace * multiplier)
        return deadline

    def witnessed_at(self, needed: int) -> float | None:
        """When the ``needed``-th witness was heard; None if fewer (or none are trusted)."""
        if needed <= 0 or len(self.witnesses) < needed:
            return None
        return sorted(self.witnesses.values())[needed - 1]
