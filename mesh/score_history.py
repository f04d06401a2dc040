"""The cluster score over the last hour, for the dashboard's chart.

Pure: times come in as values (the view's monotonic clock). The score is read every
``sample_every`` seconds and kept per bucket of ``bucket`` seconds, the lowest reading of
the bucket: a dip shorter than a bucket (a node dead for 20 s, then restarted) still shows
on an hourly chart, where an average would smooth it away. Memory is bounded by
``window / bucket`` buckets (120 for an hour in 30 s buckets), whatever the uptime.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ScoreHistory", "ScorePoint"]


@dataclass(frozen=True, slots=True)
class ScorePoint:
    at: float  # the start of the bucket, on the view's clock
    score: float  # the lowest reading in the bucket, in [0, 1]


class ScoreHistory:
    def __init__(
        self, *, window: float = 3600.0, bucket: float = 30.0, sample_every: float = 5.0
    ) -> None:
        if not (0 < sample_every <= bucket < window):
            raise ValueError("need 0 < sample_every <= bucket < window")
        self.bucket = bucket
        self.sample_every = sample_every
        self._points: deque[ScorePoint] = deque(maxlen=math.ceil(window / bucket))
        self._next_sample: float | None = None

    def observe(self, now: float, score: Callable[[], float]) -> None:
        """Read ``score()`` if a sample is due; cheap to call on every tick."""
        if self._next_sample is not None and now < self._next_sample:
            return
        self._next_sample = now + self.sample_every
        self.record(now, score())

    def record(self, now: float, score: float) -> None:
        value = min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0
        start = now - now % self.bucket
        last = self._points[-1] if self._points else None
        if last is not None and last.at == start:
            if value < last.score:
                self._points[-1] = ScorePoint(start, value)
            return
        if last is not None and start < last.at:
            return  # the clock is monotonic; an earlier time is a caller's bug, not a point
        self._points.append(ScorePoint(start, value))

    def points(self) -> list[ScorePoint]:
        """Oldest first."""
        return list(self._points)
