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
- **refutations** we had to publish within ``window``: others find us slow.

As memberlist's awareness, the score stretches our probing (the pinger's interval and
timeout, ``LinkPinger.scale``), not the view's suspicion timeouts, and it silences
nothing (unlike starvation, rule 8): in a partition every node fails the pings to the far
side and doubts itself, and its evidence must still make the far side dead. An admitted
member that suspects us again and again, or members that stop answering our pings, can
raise the score to ``max_score`` and so make us ping at most ``max_score + 1`` times
less often, never make anyone dead; only view members' pings count
(``ClusterView.on_ping_failed``), so strangers connecting to us do not.

Pure (times are arguments) and bounded: at most ``max_entries`` peers and refutations.
"""

from __future__ import annotations

from collections import OrderedDict, deque

__all__ = ["SelfDoubt"]


class SelfDoubt:
    def __init__(self, *, window: float, max_score: int, max_entries: int = 64) -> None:
        if not (window > 0 and max_score >= 0 and max_entries > 0):
            raise ValueError("window and max_entries must be > 0, max_score >= 0")
        self.window = window
        self.max_score = max_score
        self._max_entries = max_entries
        self._failed: OrderedDict[str, float] = OrderedDict()  # peer -> its latest failure
        self._refuted: deque[float] = deque(maxlen=max_entries)

    def ping_failed(self, peer: str, now: float) -> None:
        self._failed[peer] = now
        self._failed.move_to_end(peer)
        while len(self._failed) > self._max_entries:
            self._failed.popitem(last=False)

    def refuted(self, now: float) -> None:
        self._refuted.append(now)

    def score(self, now: float) -> int:
        """0 (no doubt) up to ``max_score``; forgets what is older than ``window``."""
        horizon = now - self.window
        # Both are in time order (times only move on), so the old ones are at the front.
        while self._failed and next(iter(self._failed.values())) <= horizon:
            self._failed.popitem(last=False)
        while self._refuted and self._refuted[0] <= horizon:
            self._refuted.popleft()
        return min(self.max_score, max(0, len(self._failed) - 1) + len(self._refuted))
