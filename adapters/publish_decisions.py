"""When a change of ours is news: what our digest says (``Said``), and whether a new one
differs enough from what we last published to go out at once (``is_news``) rather than
with the next refresh. Pure: the publisher (``adapters.gossip``) reads our state and asks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mesh.model import Status

__all__ = ["SCORE_BUCKET", "Said", "fraction", "is_news"]

# A score that moved less than this since we last published it is no news: scores computed
# from latencies, loads and the election's stability drift and jitter. Measured from what
# was published, not by rounding into buckets: a score jittering across a bucket's edge
# (0.974, 0.976, ...) made a digest each time. At 10 idle nodes that was 5 % of the digests
# (0.70 against 0.667 a second, the refreshes; chorus_gossip_published_total, 2026-12-02).
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


def is_news(said: Said | None, now: Said) -> bool:
    """Whether ``now`` differs from what we last published enough to publish it at once
    (otherwise the refresh carries it): anything but the scores, or a score moved by at
    least SCORE_BUCKET."""
    if said is None:
        return True
    if (said.status, said.http_addr, said.p2p_addrs) != (now.status, now.http_addr, now.p2p_addrs):
        return True
    if said.components.keys() != now.components.keys():
        return True

    def moved(old: float, new: float) -> bool:
        return abs(fraction(new) - fraction(old)) >= SCORE_BUCKET - 1e-9

    return moved(said.score, now.score) or any(
        moved(said.components[name], score) for name, score in now.components.items()
    )
