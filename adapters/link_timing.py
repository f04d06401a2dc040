"""How long to wait for a ping's answer, per peer, and how noisy our network is.

A fixed ping timeout has to fit the worst link and the busiest moment, so it is long (2 s)
and a frozen peer waits it out. TCP faced the same problem and solved it by measuring
(Jacobson and Karels 1988; RFC 6298): a smoothed round-trip time and its mean deviation
per peer, and a timeout of ``srtt + 4 * rttvar``. On a quiet LAN a peer answers within
milliseconds, so its timeout sits at the floor; a lossy link's retransmits (200 ms each at
least) and a loaded peer's late answers widen it, up to the ceiling. A frozen process
keeps the timeout its good days earned, so it is found at the floor. After a ping goes
unanswered the timeout doubles until the next answer (Karn's backoff): a peer that is
slow, not dead, is not failed again and again at the floor.

The same answers say how much to trust a short suspicion at all (Lifeguard's local
health, IV-A, fed by probe outcomes as memberlist's awareness is): ``score`` rises by one
with each late answer (slower than ``slow``) and falls by one with each timely one, between
0 and ``max_score``, as memberlist's ``awareness.ApplyDelta`` does with probe outcomes. A
burst of late answers (a node starting or restarting beside us on the same cores) is
forgotten after as many timely ones, a second or two at our ping rate; steady loss or load
keeps it up. Counting the late answers among the last 20 instead, the score of a 20-node
bench cluster still stood at 4 or 5 when it froze a node a few seconds after a restart,
and the freeze took 8.3-8.8 s to be seen instead of 3.5 (make bench, 2026-12-04). The
cluster view multiplies its suspicion and silence timeouts by ``score + 1``
(``ClusterView.set_network_health``), so under packet loss or CPU contention a live peer has
several times longer to refute a suspicion, while on a quiet network a frozen one is dead
within a few seconds. Unanswered pings do not count: a frozen peer must not make its
observers slower to condemn it. Nor do answers the caller does not score
(``answered(scored=False)``): the pinger scores the round robin's answers from members
only, not a stranger's nor a suspect's pinged out of turn, so only a majority of our own
members answering late stretches our verdicts (``max_score`` bounds how far).

``measures`` False keeps every ping at the fixed timeout (the ceiling) and uses the answers
for the score alone (``P2PConfig.ping_network_awareness``, off as the node ships); measured
timeouts always come with the score.

Pure: times come in as arguments. Bounded: one entry per peer answered, at most
``max_peers`` (the least recently answered goes).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LinkTiming"]

# RFC 6298's gains: alpha 1/8 for the mean, beta 1/4 for the deviation.
ALPHA = 0.125
BETA = 0.25


@dataclass
class _Estimate:
    srtt: float
    rttvar: float
    backoff: int = 0  # unanswered pings since the last answer


def _update(estimate: _Estimate, rtt: float) -> None:
    estimate.rttvar = (1 - BETA) * estimate.rttvar + BETA * abs(estimate.srtt - rtt)
    estimate.srtt = (1 - ALPHA) * estimate.srtt + ALPHA * rtt
    estimate.backoff = 0


class LinkTiming:
    def __init__(
        self,
        *,
        floor: float,
        ceiling: float,
        slow: float,
        max_score: int = 7,
        max_peers: int = 4096,
        measures: bool = True,
    ) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, got {floor}, {ceiling}")
        if not (slow > 0 and max_score >= 0 and max_peers > 0):
            raise ValueError("slow and max_peers must be > 0, max_score >= 0")
        self.floor = floor
        self.ceiling = ceiling
        self.slow = slow
        self.max_score = max_score
        self.measures = measures
        self._max_peers = max_peers
        self._peers: OrderedDict[str, _Estimate] = OrderedDict()
        self._score = 0
        self._all: _Estimate | None = None  # every answer, whoever gave it

    def timeout(self, peer: str) -> float:
        """Seconds to wait for ``peer``'s answer. A peer not measured yet gets what the
        answers of all peers say (the same network; at 20 members a round of pings takes
        10 s, so most peers are unmeasured for a while after a start), and the ceiling
        before any answer at all; always the ceiling when not ``measures``."""
        if not self.measures:
            return self.ceiling
        estimate = self._peers.get(peer, self._all)
        if estimate is None:
            return self.ceiling
        rto = (estimate.srtt + 4.0 * estimate.rttvar) * 2.0**estimate.backoff
        return min(self.ceiling, max(self.floor, rto))

    def answered(self, peer: str, rtt: float, *, scored: bool = True) -> None:
        """``peer`` answered after ``rtt`` seconds; the score hears it only if ``scored``
        (the pinger scores the round robin's answers from members: a suspect pinged out of
        turn is slow by selection, and a stranger must not slow our verdicts)."""
        rtt = max(0.0, rtt)
        estimate = self._peers.get(peer)
        if estimate is None:
            self._peers[peer] = _Estimate(srtt=rtt, rttvar=rtt / 2.0)
            while len(self._peers) > self._max_peers:
                self._peers.popitem(last=False)
        else:
            _update(estimate, rtt)
            self._peers.move_to_end(peer)
        if self._all is None:
            self._all = _Estimate(srtt=rtt, rttvar=rtt / 2.0)
        else:
            _update(self._all, rtt)
        if scored:
            late = rtt > self.slow
            score = self._score + 1 if late else self._score - 1
            self._score = min(self.max_score, max(0, score))

    def unanswered(self, peer: str) -> None:
        """No answer from ``peer`` within its timeout: back off until it answers."""
        estimate = self._peers.get(peer)
        if estimate is not None:
            estimate.backoff = min(estimate.backoff + 1, 6)

    @property
    def score(self) -> int:
        """Late answers less timely ones, as they came, between 0 and ``max_score``."""
        return self._score
