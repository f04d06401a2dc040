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
   trusted even when starved. Nobody's notice carries it: each observer dials for itself
   (the adapter dials a suspect it is not connected to), so a liar's notice buys at most
   a dial that connects.

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

    def held(self) -> bool:
        """Resting on carried notices alone: no deadline (rule 12)."""
        return bool(self.carried) and self.carried >= self.bases.keys()

    def confirmations(self) -> int:
        return max(0, len(self.bases) - 1)

    def note_refused(self, cause: Cause, now: float) -> None:
        if cause is Cause.REFUSED and self.refused_at is None:
            self.refused_at = now

    def rests_on_timing_of(self, observer: str) -> bool:
        """Whether ``observer`` (we) is its only observer, on timing evidence alone (rule 8)."""
        return set(self.bases) == {observer} and self.local <= TIMING_EVIDENCE

    def deadline(self, config: ClusterConfig, n: int, multiplier: int) -> float:
        timeout = config.suspicion_timeout(n, self.confirmations())
        deadline = self.since + timeout * multiplier
        if self.refused_at is not None:
            # Rule 7: a kernel's answer, not a judgement of time: no multiplier.
            deadline = min(deadline, self.refused_at + config.refused_grace)
        return deadline
