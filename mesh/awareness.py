"""Local health (Lifeguard IV-A): how far this node trusts its own sense of time.

Like memberlist's ``awareness.go``: a score from 0 (fine) up to ``awareness_max - 1``, set
from the event-loop lag check, that scales every timeout of the view. Rule 8 of
``mesh.cluster_view``:

8. Local health (Lifeguard IV-A). With health score s (0 = fine, up to awareness_max - 1),
   silence and suspicion timeouts are multiplied by s + 1. While s > 0 ("starved") our
   timing evidence (SILENCE, PING_FAILED) is not trusted: it is not published, and a
   suspicion resting on it alone never becomes DEAD. When s returns to 0 such suspicions
   restart their clock, and those never published are withdrawn (LOCAL_RECOVERY). A closed
   connection is a kernel's fact, not a timing judgement, and is trusted even when starved.
   Our digests carry s (``HealthDigest.local_health``), and a suspicion of a member is
   stretched by the s its last digest reported, added to our own multiplier: a starved
   member answers pings late, which on a clean link looks like a frozen one, and needs the
   time to refute. A member can only slow the verdict on itself. A member whose digest
   says it is starting is taken to report at least ``ClusterConfig.starting_health``
   (``reported_health``): it is as busy as a starved one, if not for as long.

A second score, the network's (0 up to ``awareness_max - 1``), comes from how late our
pings are answered (``adapters.link_timing``): it stretches the same timeouts, so the
multiplier is ``health + network + 1``, at most ``awareness_max``, but it is no sign that
our own clock is wrong, so our evidence is still trusted and published. Under packet loss
a live member then has longer to refute a suspicion; on a quiet network a short suspicion
stands. A suspicion keeps the network score it began under if the score falls before it
ends (``Suspicion.network``): the score moves with every answer, and a suspicion opened
under load must not find its deadline already past when the load lifts for a moment.

A third, self-doubt (``mesh.self_doubt``), comes from our own pings and refutations: many
distinct peers failing our pings, or others suspecting us, say that we are the slow one.
As memberlist's awareness, it stretches our probing only: the pinger's interval and
timeout (``LinkPinger.scale``), so a slow node sends fewer pings and fails fewer live
peers. It is not in ``multiplier``: the view's timeouts stay as they are, so a frozen
peer is not found later by an observer that also failed a ping or two elsewhere (the
20-node bench found a freeze in 12 s instead of 8 when it was, 2026-12-03).

This class only keeps the scores; what the view does with it is ``mesh.cluster_suspicions``
(not publishing, recovering) and ``mesh.cluster_timers`` (the multiplier, no death).
"""

from __future__ import annotations

from mesh.messages import HealthDigest
from mesh.model import Status
from mesh.self_doubt import SelfDoubt

__all__ = ["Awareness", "reported_health"]


def reported_health(digest: HealthDigest, starting_health: int) -> int:
    """The local health a member's digest stands for: what it says, and while it says it
    is starting at least ``starting_health``. Both come from its own signed digest."""
    if digest.status is Status.STARTING:
        return max(digest.local_health, starting_health)
    return digest.local_health


class Awareness:
    def __init__(self, awareness_max: int, doubt_window: float = 10.0) -> None:
        self._max = awareness_max
        self._health = 0
        self._network = 0
        self.doubt = SelfDoubt(window=doubt_window, max_score=awareness_max - 1)
        self._doubt = 0  # the doubt's score at the last ``refresh``

    @property
    def score(self) -> int:
        return self._health

    @property
    def starved(self) -> bool:
        return self._health > 0

    @property
    def network(self) -> int:
        return self._network

    @property
    def doubted(self) -> int:
        """Self-doubt's score at the last ``refresh`` (0 up to ``awareness_max - 1``)."""
        return self._doubt

    @property
    def multiplier(self) -> int:
        """memberlist's ``awareness.ScaleTimeout``: timeouts times (score + 1), both
        scores counted (not self-doubt), at most ``awareness_max``."""
        return self.stretch()

    def multiplier_for(self, reported: int) -> int:
        """The multiplier of a suspicion of a member whose last digest reported local
        health ``reported``: ours plus its (clamped), at most ``awareness_max``."""
        return self.stretch(reported=reported)

    def stretch(self, *, network_since: int = 0, reported: int = 0) -> int:
        """``multiplier`` with the network's score at least ``network_since`` (a
        suspicion's, from when it began) and a suspect's reported health added."""
        network = max(self._network, min(max(0, network_since), self._max - 1))
        own = self._health + network + 1
        return min(self._max, own + min(max(0, reported), self._max - 1))

    def refresh(self, now: float) -> int:
        """Bring self-doubt up to ``now`` (its evidence ages out); its new score."""
        self._doubt = self.doubt.score(now)
        return self._doubt

    def set_network(self, score: int) -> None:
        """Set the network's score, clamped to [0, awareness_max - 1]."""
        self._network = min(max(0, score), self._max - 1)

    def set(self, score: int) -> bool:
        """Set the score, clamped to [0, awareness_max - 1]; True if that ended starvation."""
        was_starved = self.starved
        self._health = min(max(0, score), self._max - 1)
        return was_starved and not self.starved
