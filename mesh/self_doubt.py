"""Self-doubt (Lifeguard IV-A, fed by our own probes): when many of our pings fail, suspect
ourselves first.

The event-loop lag check (``probes.loop_lag``) sees one kind of slowness: our own loop
waking late. It misses the kind that broke a 30-node devnet on two cores (2026-12-03):
every process got its share of the cores often enough to keep its own loop lag under the
0.5 s threshold, yet a ping needs five or six hops between two such processes, each
waiting for the other to be scheduled, and answers came after the 2 s timeout. Node 25
failed pings to ten different peers in ten seconds, suspected each of them, every
suspicion set 29 observers pinging out of turn on cores that were already full, and the
cluster never recovered (402 false deaths, 9 nodes stopped on their critical checks).

Lifeguard's answer is a local health score fed by probe outcomes (memberlist's
``awareness``: a failed probe without nacks is +1, a refutation of a suspicion of
ourselves +1, an answered probe -1), by which the node stretches its probe interval and its
probe timeout. We have no nacks, so we count instead what
tells a sick observer from a sick peer without them:

- **distinct peers whose pings failed** within ``window`` seconds, less one: one frozen
  or crashed peer is that peer's problem (its observers stay as quick as before), ten in
  ten seconds are ours;
- **observers whose suspicions we had to refute** within ``window``: others find us slow.
  Each observer counts once, so one member suspecting us over and over is one doubt.

As memberlist's awareness, the score stretches our probing (the pinger's interval and
timeout, ``LinkPinger.scale``), not the view's suspicion timeouts, and it silences
nothing (unlike starvation, rule 8): in a partition every node fails the pings to the far
side and doubts itself, and its evidence must still make the far side dead. An admitted
member that suspects us again and again, or members that stop answering our pings, can
raise the score to ``max_score`` and so make us ping at most ``max_score + 1`` times
less often, never make anyone dead. Only failures of members alive in our view count
(``ClusterView.on_ping_failed``): strangers connecting to us, or members already
suspected or dead, do not. In an open cluster (no admission policy) minted members that
answer our pings for a while and then stop can still raise it; under an admission
policy only admitted members can.

Pure (times are arguments) and bounded: at most ``max_entries`` peers and observers.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["SelfDoubt"]


class SelfDoubt:
    def __init__(self, *, window: float, max_score: int, max_entries: int = 64) -> None:
        if not (window > 0 and max_score >= 0 and max_entries > 0):
            raise ValueError("window and max_entries must be > 0, max_score >= 0")
        self.window = window
        self.max_score = max_score
        self._max_entries = max_entries
        self._failed: OrderedDict[str, float] = OrderedDict()  # peer -> its latest failure
        self._refuted: OrderedDict[str, float] = OrderedDict()  # observer -> latest refuted

    def ping_failed(self, peer: str, now: float) -> None:
        self._note(self._failed, peer, now)

    def refuted(self, observer: str, now: float) -> None:
        """We refuted a suspicion of us by ``observer``."""
        self._note(self._refuted, observer, now)

    def score(self, now: float) -> int:
        """0 (no doubt) up to ``max_score``; forgets what is older than ``window``."""
        horizon = now - self.window
        for entries in (self._failed, self._refuted):
            # In time order (times only move on), so the old ones are at the front.
            while entries and next(iter(entries.values())) <= horizon:
                entries.popitem(last=False)
        return min(self.max_score, max(0, len(self._failed) - 1) + len(self._refuted))

    def next_change(self) -> float | None:
        """When the oldest evidence ages out (the score may fall then); None if none."""
        oldest = [next(iter(e.values())) for e in (self._failed, self._refuted) if e]
        return min(oldest) + self.window if oldest else None

    def _note(self, entries: OrderedDict[str, float], key: str, now: float) -> None:
        entries[key] = now
        entries.move_to_end(key)
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
