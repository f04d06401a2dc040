"""CPU usage judged over a sliding window instead of at one instant (issue 14).

Each reading of ``SystemStats.cpu_fraction`` is the mean busy fraction since the previous
reading (``psutil.cpu_percent(interval=None)`` semantics), so a reading is a *span* of time
with a mean over it. ``CpuWindow`` keeps those spans and answers the time-weighted mean over
the last ``window`` seconds. No I/O and no clock: the caller passes ``now``.

Rules:

- The very first reading primes the window: its span began before anyone here knew the
  time (``PsutilStats`` primes at construction), and on a starting node it is the start-up
  itself, which is not what "busy" means. It is reported as ``latest``, never judged.
- The mean is judged only once the readings cover ``min_span`` seconds of the window
  (``judged``); before that a node's first check would judge a fraction of a second of
  start-up, and flap control would keep the verdict for minutes.
- Memory is bounded whatever the reading rate: a reading that follows a bucket narrower
  than ``window / points`` is merged into it (time-weighted), and buckets that end before the
  window are dropped, so at most ``points + 2`` buckets are ever kept.
- The oldest bucket may straddle the window's start; only its overlap counts, as if its
  load were spread evenly over its span.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

# The window resource-health judges CPU over, its resolution, and how much of it must be
# seen before CPU is judged at all. A minute matches the check's own interval (60 s), so a
# node running the defaults judges each minute exactly once; half a minute of readings is
# enough to tell a start-up burst (seconds) from an overload.
CPU_WINDOW = 60.0  # seconds
CPU_POINTS = 12  # buckets per window: 5 s resolution
CPU_MIN_SPAN = CPU_WINDOW / 2  # seconds of readings before CPU is judged


class _Bucket(NamedTuple):
    start: float
    end: float
    mean: float  # busy fraction over (start, end]


@dataclass(frozen=True, slots=True)
class CpuMean:
    """What the window says at one moment."""

    mean: float  # time-weighted mean over ``span`` (``latest`` while nothing is covered)
    span: float  # seconds of the window that readings cover
    judged: bool  # span >= min_span: the mean may fail the check
    latest: float  # the most recent reading as it came


class CpuWindow:
    def __init__(
        self,
        window: float = CPU_WINDOW,
        points: int = CPU_POINTS,
        min_span: float = CPU_MIN_SPAN,
    ) -> None:
        if not window > 0.0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points!r}")
        if not 0.0 <= min_span <= window:
            raise ValueError(f"min_span must be within 0..window, got {min_span!r}")
        self.window = window
        self.min_span = min_span
        self._width = window / points
        # The merge rule keeps it within points + 2; maxlen is only the hard backstop.
        self._buckets: deque[_Bucket] = deque(maxlen=points + 2)
        self._last: float | None = None  # end of the previous reading's span
        self._latest = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def add(self, now: float, fraction: float) -> None:
        """Record a reading: the mean busy ``fraction`` since the previous ``add``."""
        self._latest = fraction
        last, self._last = self._last, now
        if last is None or now <= last:
            # The priming reading, or a clock that did not move: no span to weigh it by.
            return
        newest = self._buckets[-1] if self._buckets else None
        if newest is not None and newest.end == last and newest.end - newest.start < self._width:
            # Readings faster than the resolution share one bucket, so memory stays bounded.
            span = now - newest.start
            mean = (newest.mean * (newest.end - newest.start) + fraction * (now - last)) / span
            self._buckets[-1] = _Bucket(newest.start, now, mean)
        else:
            self._buckets.append(_Bucket(last, now, fraction))
        while self._buckets and self._buckets[0].end <= now - self.window:
            self._buckets.popleft()

    def mean(self, now: float) -> CpuMean:
        """The time-weighted mean over ``(now - window, now]``."""
        start = now - self.window
        weighted = covered = 0.0
        for bucket in self._buckets:
            overlap = min(bucket.end, now) - max(bucket.start, start)
            if overlap > 0.0:
                weighted += bucket.mean * overlap
                covered += overlap
        if covered <= 0.0:
            return CpuMean(mean=self._latest, span=0.0, judged=False, latest=self._latest)
        return CpuMean(
            mean=weighted / covered,
            span=covered,
            judged=covered >= self.min_span,
            latest=self._latest,
        )
