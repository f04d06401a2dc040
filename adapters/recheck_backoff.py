"""How often to ping a suspect out of turn: less and less while it does not answer.

Every suspicion we hear of a member we are connected to sets us pinging it out of turn
(``adapters.suspect_checks``): our answer confirms the suspicion or settles it. That is
SWIM's indirect probe with every observer asking for itself, and it is cheap while a
suspicion is rare. It is not when a live member is overwhelmed, as the newest node of a
30-node devnet was by its own join on two full cores (2026-12-03): it missed pings, each
observer's miss was a new suspicion, each suspicion set the other 28 pinging it again, and
each observer pinged it every two seconds for minutes (45 unanswered pings each), which
kept it overwhelmed. The first unanswered ping already counted as our confirmation; the
next ones add little evidence and much load.

So after an out-of-turn ping to a peer goes unanswered, the next one waits ``base``
seconds, then twice as long after each further miss, up to ``ceiling`` (Karn's backoff, as
TCP's retransmits); an answer to an out-of-turn ping clears it, and misses older than
``ceiling`` past their wait are forgotten. A frozen peer is still confirmed by every
observer's first ping; a crashed one is still found by the dial-back its closed
connection brings about (which this does not delay).

Pure (times are arguments) and bounded: at most ``max_peers`` peers, the oldest forgotten.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecheckBackoff"]


class RecheckBackoff:
    def __init__(self, *, base: float, ceiling: float, max_peers: int = 4096) -> None:
        if not (0 < base <= ceiling and max_peers > 0):
            raise ValueError(f"need 0 < base <= ceiling and max_peers > 0, got {base}, {ceiling}")
        self.base = base
        self.ceiling = ceiling
        self._max_peers = max_peers
        self._peers: OrderedDict[str, tuple[int, float]] = OrderedDict()  # misses, not before

    def allows(self, peer: str, now: float) -> bool:
        entry = self._peers.get(peer)
        return entry is None or now >= entry[1]

    def missed(self, peer: str, now: float) -> None:
        """An out-of-turn ping of ``peer`` went unanswered at ``now``. Misses older than
        ``ceiling`` past their wait are forgotten: a member that was slow an hour ago
        starts again from ``base``."""
        misses, not_before = self._peers.pop(peer, (0, now))
        if now > not_before + self.ceiling:
            misses = 0
        misses += 1
        wait = min(self.ceiling, self.base * 2.0 ** min(misses - 1, 30))
        self._peers[peer] = (misses, now + wait)
        while len(self._peers) > self._max_peers:
            self._peers.popitem(last=False)

    def answered(self, peer: str) -> None:
        self._peers.pop(peer, None)
