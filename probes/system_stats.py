"""Where the local resource checks read CPU, memory and disk usage from.

A small interface (``SystemStats``) with a real implementation over psutil (``PsutilStats``)
and an in-memory fake for tests (``FixedStats``), in the style of httpcore's backends. Every
reading is a fraction in 0..1, not a percentage, so thresholds and scores share one unit.

Blocking: ``cpu_fraction`` and ``memory_fraction`` read ``/proc`` and return at once, so the
checks call them on the trio thread. ``disk_fraction`` is a ``statvfs`` that can hang forever
on a dead network mount, so the checks call it through ``trio.to_thread.run_sync`` with
``abandon_on_cancel=True``; implementations need not (and must not) do that themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency


@runtime_checkable
class SystemStats(Protocol):
    """The resource readings the local checks need; each is a fraction in 0..1."""

    def cpu_fraction(self) -> float:
        """System-wide CPU busy fraction since the previous call; must not block.

        The semantics of ``psutil.cpu_percent(interval=None)``: the first call only primes the
        baseline (an implementation may prime at construction instead).
        """
        ...

    def memory_fraction(self) -> float:
        """Fraction of physical memory in use; must not block."""
        ...

    def disk_fraction(self, path: str) -> float:
        """Fraction of the filesystem holding ``path`` that is used; may block (hung mount)."""
        ...


class _CpuSample(NamedTuple):
    busy: float  # CPU seconds spent not idle, summed over all CPUs
    total: float  # all CPU seconds, idle included


def _cpu_sample() -> _CpuSample:
    """Busy and total CPU seconds, counted the way ``psutil.cpu_percent`` counts them.

    On Linux guest time is already inside user/nice, so it is taken out of the total, and
    iowait is idle time the kernel does not book as idle (psutil's ``_cpu_tot_time`` and
    ``_cpu_busy_time``; htop does the same). Fields a platform lacks count as zero.
    """
    times = psutil.cpu_times()
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return _CpuSample(busy=busy, total=total)


class PsutilStats:
    """Real readings from psutil.

    CPU usage is the delta of ``psutil.cpu_times()`` since the previous call, kept per
    instance. ``psutil.cpu_percent(interval=None)`` would do the same sums, but keeps its
    baseline in module state keyed by thread, so any other code calling it on the trio
    thread would silently shorten our measuring interval. The baseline is primed at
    construction, so the first ``cpu_fraction()`` already covers a real interval.
    """

    def __init__(self) -> None:
        self._last_cpu = _cpu_sample()

    def cpu_fraction(self) -> float:
        now = _cpu_sample()
        # Counters can step backwards (psutil issues #392, #645); clamp like psutil and top.
        busy = max(0.0, now.busy - self._last_cpu.busy)
        total = max(0.0, now.total - self._last_cpu.total)
        self._last_cpu = now
        if total <= 0.0:
            # Called again within one clock tick: no new information, report idle as psutil does.
            return 0.0
        return min(1.0, busy / total)

    def memory_fraction(self) -> float:
        return float(psutil.virtual_memory().percent) / 100.0

    def disk_fraction(self, path: str) -> float:
        # ``percent`` is used / (used + free-to-unprivileged-users), which matches ``df`` and
        # is what fills up for the node: the root-reserved blocks are not ours to use.
        return float(psutil.disk_usage(path).percent) / 100.0


@dataclass
class FixedStats:
    """A fake with settable readings, for tests.

    Set ``error`` to make every reading raise it (a failing source). ``disk_paths`` records the
    paths asked for, so a test can check the path reaches the source.
    """

    cpu: float = 0.0
    memory: float = 0.0
    disk: float = 0.0
    error: Exception | None = None
    disk_paths: list[str] = field(default_factory=list)

    def _raise_if_failing(self) -> None:
        if self.error is not None:
            raise self.error

    def cpu_fraction(self) -> float:
        self._raise_if_failing()
        return self.cpu

    def memory_fraction(self) -> float:
        self._raise_if_failing()
        return self.memory

    def disk_fraction(self, path: str) -> float:
        self.disk_paths.append(path)
        self._raise_if_failing()
        return self.disk
