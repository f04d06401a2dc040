"""How much the pull protocol (``adapters.view_pull``) may do, and when: the pages one pull
takes, when anti-entropy syncs, and what a server answers. Pure, and shared with the
simulator (``devnet.simulator.pulls``), which must pace its pulls as the node does."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from adapters.gossip_tuning import GossipTuning
from mesh.cluster_config import ClusterConfig
from mesh.snapshot_codec import PullAsk
from mesh.wire_bounds import MAX_SNAPSHOT_BYTES
from probes.rate_limit import RateLimiter, TokenBucket

__all__ = ["SUMMARY_REUSE", "ServeLimits", "SummaryMemo", "max_pages", "sync_intervals"]

# Seconds a server answers sync requests from the same summary of its own view. Building
# it walks every member (28 ms at 10,000); a second-old summary costs at most a bucket sent
# that has since agreed, or one missed until the next sync.
SUMMARY_REUSE = 1.0

# What one member of a view costs a page at most, on average over the view: an entry is
# some 200-800 bytes, more for the few under suspicion (a notice per observer).
_BYTES_PER_MEMBER = 2048


def sync_intervals(tuning: GossipTuning) -> Iterator[float]:
    """Seconds before each anti-entropy pull: ``sync_first`` for the first
    ``sync_early`` of them, then doubling up to ``sync_interval``, then that for ever."""
    interval = min(tuning.sync_first, tuning.sync_interval)
    for _ in range(tuning.sync_early):
        yield interval
    while True:
        interval = min(2 * interval, tuning.sync_interval)
        yield interval


class ServeLimits:
    """The server's rate limits: per peer, for first pages (a pull or a sync) and, apart,
    for the later pages of a view too large for one; and one global budget for both, so
    that mixing the two kinds of request buys no peer, nor all of them, more answers."""

    def __init__(self, tuning: GossipTuning) -> None:
        self._global = TokenBucket(tuning.serve_global_rate, tuning.serve_global_burst, 0.0)
        self._first = RateLimiter(
            rate=tuning.serve_global_rate,
            burst=tuning.serve_global_burst,
            per_key_rate=tuning.serve_rate,
            per_key_burst=tuning.serve_burst,
        )
        self._later = RateLimiter(
            rate=tuning.serve_global_rate,
            burst=tuning.serve_global_burst,
            per_key_rate=tuning.serve_page_rate,
            per_key_burst=tuning.serve_page_burst,
        )

    def allow(self, peer: str, ask: PullAsk, now: float) -> bool:
        limits = self._later if ask.after else self._first
        return limits.allow(peer, now, pool=self._global)


def max_pages(config: ClusterConfig) -> int:
    """The most pages one pull takes from one peer: enough for the largest view we hold,
    and a bound on what a responder that sends a few members a page can have us do."""
    return max(1, -(-config.max_members * _BYTES_PER_MEMBER // MAX_SNAPSHOT_BYTES))


class SummaryMemo:
    """Our view's summary (``ClusterView.summary``), built at most once per ``keep``
    seconds however many sync requests and pages ask for it."""

    def __init__(self, build: Callable[[], bytes], keep: float = SUMMARY_REUSE) -> None:
        self._build = build
        self._keep = keep
        self._made: tuple[float, bytes] | None = None

    def get(self, now: float) -> bytes:
        if self._made is None or not 0.0 <= now - self._made[0] < self._keep:
            self._made = (now, self._build())
        return self._made[1]
