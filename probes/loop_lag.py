"""Event-loop lag: how late trio wakes a task that asked to sleep.

A node whose event loop is starved (a blocking call on the trio thread, CPU exhaustion, a
long GC pause) answers probes late, and a failure detector reads that as the *peer* being
slow. Lifeguard (Dadgar et al., 2017, "Local Health Aware Probe") has a member distrust its
own judgements when it sees signs of its own slowness; ``LoopLagMonitor.starved`` is such a
signal for us, and ``event_loop_lag_check`` reports it as an ordinary check.

Measuring: sleep until a deadline ``period`` ahead, then record ``actual wake - deadline``.
Trio wakes a timer on its first scheduler pass after the deadline, so on an idle loop the lag
is about a millisecond (exactly 0 under ``MockClock``); anything that holds the loop adds
directly to it.

The statistics live in ``LagWindow``, which takes (time, lag) values and does no I/O, so they
are tested without a loop.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from mesh.model import CheckResult, HealthCheck
from mesh.wake_grid import grid_after

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's own annotations for mypy; its
    # TaskStatus is the same protocol as trio.TaskStatus.
    from trio_typing import TaskStatus

DEFAULT_PERIOD = 0.25  # seconds between samples: finer costs wake-ups, coarser misses short stalls
# Seconds of samples kept. At least the check interval, so every stall is seen by one check run.
DEFAULT_SPAN = 10.0
DEFAULT_THRESHOLD = 0.5  # seconds late before the loop counts as starved
# Seconds after its last late wake-up that the loop still counts as starved (for the
# node's own judgements; the check reports the whole window). Long enough to cover a
# ping's 2 s timeout that a stall fell into, and the backlog a stall leaves in our
# buffers; not the check's 10 s: a node thawed after 5 s stopped kept every suspicion's
# timeout eight times longer for ten more seconds, and the bench's freeze detection
# took 12-24 s where it takes 3 (2026-12-03).
DEFAULT_RECOVER_AFTER = 3.0

CHECK_INTERVAL = 10.0
CHECK_TIMEOUT = 5.0

EVENT_LOOP_LAG = "event-loop-lag"


class LagWindow:
    """The lag samples of the last ``span`` seconds.

    Rules:
    - A sample is ``(time, lag)``: when the sleeper woke and how many seconds late, both >= 0
      and in seconds; times must not go backwards.
    - Adding a sample at ``time`` drops every sample taken at or before ``time - span``, so
      the window is the half-open interval ``(time - span, time]``.
    - ``max_lag`` and ``recent_lag`` are 0.0 while the window is empty.
    """

    def __init__(self, span: float = DEFAULT_SPAN) -> None:
        if not span > 0.0:
            raise ValueError(f"span must be positive, got {span!r}")
        self.span = span
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, time: float, lag: float) -> None:
        if self._samples and time < self._samples[-1][0]:
            raise ValueError(f"sample time went backwards: {time!r} < {self._samples[-1][0]!r}")
        if not lag >= 0.0:
            raise ValueError(f"lag must be >= 0, got {lag!r}")
        self._samples.append((time, lag))
        horizon = time - self.span
        while self._samples[0][0] <= horizon:
            self._samples.popleft()

    @property
    def max_lag(self) -> float:
        # A linear scan: a 10 s window at 0.25 s holds 40 samples, read once per check.
        return max((lag for _, lag in self._samples), default=0.0)

    @property
    def recent_lag(self) -> float:
        return self._samples[-1][1] if self._samples else 0.0

    def late_within(self, threshold: float, seconds: float) -> bool:
        """Whether a sample more than ``threshold`` late was taken within ``seconds`` of
        the newest one."""
        if not self._samples:
            return False
        newest = self._samples[-1][0]
        return any(
            lag > threshold and newest - time < seconds for time, lag in reversed(self._samples)
        )

    @property
    def sample_count(self) -> int:
        return len(self._samples)


class LoopLagMonitor:
    """Samples the lag of the trio loop it runs in; start it with ``nursery.start(monitor.run)``.

    ``threshold`` only feeds ``starved``; the check carries its own.
    """

    def __init__(
        self,
        *,
        period: float = DEFAULT_PERIOD,
        span: float = DEFAULT_SPAN,
        threshold: float = DEFAULT_THRESHOLD,
        recover_after: float = DEFAULT_RECOVER_AFTER,
    ) -> None:
        if not period > 0.0:
            raise ValueError(f"period must be positive, got {period!r}")
        if not span >= period:
            raise ValueError(f"span ({span!r}) must cover at least one period ({period!r})")
        if not threshold > 0.0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        if not 0.0 < recover_after <= span:
            raise ValueError(f"recover_after must be in (0, span], got {recover_after!r}")
        self.period = period
        self.threshold = threshold
        self.recover_after = recover_after
        self.window = LagWindow(span)
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def max_lag(self) -> float:
        return self.window.max_lag

    @property
    def recent_lag(self) -> float:
        return self.window.recent_lag

    @property
    def sample_count(self) -> int:
        return self.window.sample_count

    @property
    def starved(self) -> bool:
        """Whether the loop woke a sleeper more than ``threshold`` late within the last
        ``recover_after`` seconds (the check looks at the whole window)."""
        return self.window.late_within(self.threshold, self.recover_after)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._running:
            raise RuntimeError("this LoopLagMonitor is already running")
        self._running = True
        try:
            # The first deadline is fixed before ``started()``: a stall that begins as soon as
            # ``nursery.start`` returns is already being measured.
            # Deadlines on the node's wake grid (mesh/wake_grid.py): the sampler wakes with
            # the other periodic loops, and a late wake is measured against the grid point
            # (a sample may include the few milliseconds of the loops that woke with it;
            # the thresholds acting on lag are 100 ms and 0.5 s).
            deadline = grid_after(trio.current_time(), self.period)
            task_status.started()
            while True:
                await trio.sleep_until(deadline)
                woke = trio.current_time()
                # Trio never fires a timer before its deadline; the clamp is belt and braces.
                self.window.add(woke, max(0.0, woke - deadline))
                deadline = grid_after(woke, self.period)
        finally:
            self._running = False


def event_loop_lag_check(
    monitor: LoopLagMonitor, threshold: float = DEFAULT_THRESHOLD
) -> HealthCheck:
    """The "event-loop-lag" check: warning only, every 10 s, 5 s timeout.

    Fails when the loop woke a sleeper more than ``threshold`` seconds late within the
    monitor's window, or when the monitor is not running (its window would be stale).
    """
    if not threshold > 0.0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")

    async def check_loop_lag() -> CheckResult:
        details: dict[str, Any] = {
            "max_lag": monitor.max_lag,
            "recent_lag": monitor.recent_lag,
            "threshold": threshold,
            "samples": monitor.sample_count,
        }
        if not monitor.running:
            return CheckResult.fail("event loop lag monitor is not running", **details)
        if monitor.max_lag > threshold:
            return CheckResult.fail(
                f"event loop starved: woke {monitor.max_lag:.1f} s late", **details
            )
        if monitor.sample_count == 0:
            return CheckResult.ok("event loop lag: no samples yet", **details)
        return CheckResult.ok(f"event loop lag {monitor.max_lag * 1000:.0f} ms", **details)

    return HealthCheck(
        name=EVENT_LOOP_LAG,
        checker=check_loop_lag,
        description="How late the trio event loop wakes sleeping tasks",
        interval=CHECK_INTERVAL,
        timeout=CHECK_TIMEOUT,
        critical=False,
    )
