"""When our digest and our suspicions go out: the publisher's decisions, without I/O.

At each poll of the publisher, in this order:

1. A refutation the view asked for (we are suspected: SWIM 4.2, answer with a higher
   incarnation) goes out at once and skips the budget, but at most once per
   ``refute_interval``: a liar sending notice after notice must not make us publish at its
   pace. While one waits, nothing else of ours is published.
2. Else our digest goes out if it is due and the budget has a token. Due: a peer new to
   our GossipSub mesh should hear of us (an announcement: the budget only, no
   ``min_publish_interval``), or ``ClusterConfig.publish_due`` says so, for news
   (``is_news``: status, addresses, components, local health, or a score fallen by
   ``SCORE_BUCKET``; a score risen by as much once ``refresh_period`` has passed) or for
   the refresh.
3. Then queued suspicions, a token each; at most ``max_pending_suspects`` wait.

The budget is two token buckets, one for our digests and one for our suspicions, each
resized at every poll to ``publish_budget(tuning, n)`` (``adapters.gossip_tuning``).
Suspicions have their own because a detection cannot wait behind our news: in a 20-node
cluster a node's share is 0.5 messages a second, and the digests a member's restart set off
(its rejoin, a new mesh peer) left the first observer of a frozen peer without a token for
up to 2 s, so the suspicion the others heard came 0.4-0.6 s later from a slower observer
(bench freeze trials, 2026-12-04). ``GossipTuning`` checks that the ``signer_rate`` our
peers hold us to admits both buckets and our refutations.

Time is a value passed in, the view's monotonic clock, so the same decisions run under a
virtual clock (``devnet/simulator/publisher.py``). Reading our status, signing and
publishing are ``adapters.gossip_publisher``'s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from adapters.gossip_tuning import GossipTuning, publish_budget
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import PublishSuspect
from mesh.model import Status
from probes.rate_limit import TokenBucket

__all__ = ["SCORE_BUCKET", "PublishDecisions", "Queued", "Said", "fraction", "is_news", "rose"]

# A score that fell less than this since we last published it is no news: scores computed
# from latencies, loads and the election's stability drift and jitter. Measured from what
# was published, not by rounding into buckets: a score jittering across a bucket's edge
# (0.974, 0.976, ...) made a digest each time. At 10 idle nodes that was 5 % of the digests
# (0.70 against 0.667 a second, the refreshes; chorus_gossip_published_total, 2026-12-02).
# A score that rose by SCORE_BUCKET is news only once ClusterConfig.refresh_period (30 s in
# production) has passed since our last digest: the refresh of a large certified cluster
# comes far later (refresh_interval grows with n), and a recovery must not wait for it. A
# recovery that changes our status is news at once by the status. Rises were news at once
# until 2026-12-05: the election component climbs with the time since the admin last
# changed (0.5 + 0.5 * stability), so in a cluster's first two minutes every node published
# a digest about every 15 s for it: 51 of the 155 digests of a 10-node devnet's first
# 150 s, where 17 were refreshes (logged reasons).
SCORE_BUCKET = 0.05


def fraction(value: float) -> float:
    """A score as a digest carries it: within [0, 1], and 0 for NaN or infinity."""
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


@dataclass(frozen=True, slots=True)
class Said:
    """What a digest of ours says of us, as far as deciding whether a new one is news."""

    status: Status
    score: float
    components: Mapping[str, float]
    http_addr: str
    p2p_addrs: tuple[str, ...]
    # Our local health (mesh/awareness.py): peers stretch a suspicion of us by it, so a
    # starved node says so at once, and says at once that it is no longer.
    local_health: int = 0


def _moved(said: Said, now: Said, direction: int) -> bool:
    """Whether the score or a component both carry moved by SCORE_BUCKET in ``direction``
    (+1 up, -1 down)."""
    pairs = [(said.score, now.score)] + [
        (said.components[name], score)
        for name, score in now.components.items()
        if name in said.components
    ]
    step = SCORE_BUCKET - 1e-9
    return any(direction * (fraction(new) - fraction(old)) >= step for old, new in pairs)


def rose(said: Said, now: Said) -> bool:
    """Whether a score rose by at least SCORE_BUCKET since ``said``."""
    return _moved(said, now, +1)


def is_news(said: Said | None, now: Said) -> bool:
    """Whether ``now`` differs from what we last published enough to publish it at once
    (otherwise the refresh carries it): anything but the scores, or a score fallen by at
    least SCORE_BUCKET."""
    if said is None:
        return True
    if (said.status, said.http_addr, said.p2p_addrs, said.local_health) != (
        now.status,
        now.http_addr,
        now.p2p_addrs,
        now.local_health,
    ):
        return True
    if said.components.keys() != now.components.keys():
        return True
    return _moved(said, now, -1)


# What became of a suspicion handed to the queue.
Queued = Literal["queued", "duplicate", "full"]


class PublishDecisions:
    """The publisher's state and its decisions (module docstring); ``now`` on the view's
    clock. The caller publishes what it is told to, and reports a digest it sent."""

    def __init__(self, tuning: GossipTuning, config: ClusterConfig) -> None:
        self._tuning = tuning
        self._config = config
        self.bucket = TokenBucket(tuning.publish_rate, tuning.publish_burst, 0.0)
        self.suspect_bucket = TokenBucket(tuning.publish_rate, tuning.publish_burst, 0.0)
        self.last_sent: float | None = None
        self.published: Said | None = None  # what our last digest said
        self.announce = False  # a new peer joined our mesh: tell it about us
        self.announced: set[str] = set()
        self.refuting = False
        self.last_refute = -math.inf
        self.suspects: deque[PublishSuspect] = deque()

    def refute(self) -> None:
        """The view asked for a refutation (the caller has raised our incarnation)."""
        self.refuting = True

    def refute_failed(self) -> None:
        # A refutation that cannot go out must not be retried at the loop's pace forever.
        self.refuting = False

    def queue_suspect(self, suspicion: PublishSuspect) -> Queued:
        if suspicion in self.suspects:
            return "duplicate"
        if len(self.suspects) >= self._tuning.max_pending_suspects:
            return "full"
        self.suspects.append(suspicion)
        return "queued"

    def stop(self) -> None:
        """We are leaving: the suspicions still queued are not published."""
        self.suspects.clear()

    def forget(self, peer: str) -> None:
        """``peer``'s last connection closed: announce ourselves again when it is back."""
        self.announced.discard(peer)

    def note_mesh(self, mesh: AbstractSet[str]) -> None:
        """Our GossipSub mesh now; a peer new to it is announced to."""
        if mesh - self.announced:
            # A peer new to our mesh: it (and through it, its side of the cluster) should
            # hear from us now rather than at our next refresh.
            self.announced |= mesh
            self.announce = True

    def digest_due(
        self,
        now: float,
        n: int,
        mesh: Callable[[], AbstractSet[str]],
        said: Callable[[], Said],
    ) -> bool:
        """Whether our digest goes out now, its token taken; ``n`` live members. ``mesh``
        and ``said`` are read only when a refutation does not decide it."""
        budget = publish_budget(self._tuning, n)
        self.bucket.rate, self.bucket.burst = budget
        self.suspect_bucket.rate, self.suspect_bucket.burst = budget
        if self.refuting and now - self.last_refute >= self._tuning.refute_interval:
            self.last_refute = now
            return True
        if self.refuting:
            return False  # the refutation waits out refute_interval; the poll brings us back
        return self._publish_now(now, n, mesh, said) and self.bucket.take(now)

    def next_suspect(self, now: float) -> PublishSuspect | None:
        """The next suspicion to publish, its token taken; None while there is none or no
        token."""
        if self.suspects and self.suspect_bucket.take(now):
            return self.suspects.popleft()
        return None

    def sent(self, now: float, said: Said) -> None:
        """Our digest saying ``said`` went out at ``now``: a refutation or announcement
        pending is answered by it."""
        self.refuting = False
        self.announce = False
        self.last_sent = now
        self.published = said

    def _publish_now(
        self,
        now: float,
        n: int,
        mesh: Callable[[], AbstractSet[str]],
        said: Callable[[], Said],
    ) -> bool:
        changed = self._changed(now, mesh, said)
        # Announcing ourselves to a peer new to our mesh is no change of ours that could
        # flap: it waits for the publish budget only, not for min_publish_interval (1 s
        # in production, which was most of a joiner's time to full agreement; issue 13).
        if self.announce:
            return True
        return self._config.publish_due(now=now, last_sent=self.last_sent, changed=changed, n=n)

    def _changed(
        self, now: float, mesh: Callable[[], AbstractSet[str]], said: Callable[[], Said]
    ) -> bool:
        self.note_mesh(mesh())
        if self.announce:
            return True
        current, published = said(), self.published
        if is_news(published, current):
            return True
        # published is not None here: is_news(None, ...) is always news.
        late = self.last_sent is None or now - self.last_sent >= self._config.refresh_period
        return late and published is not None and rose(published, current)
