"""Who administers the cluster, derived from the cluster view, and how stable that choice is.

Rules:
- The admin is the longest-running member (earliest ``start_time``) among those the view
  holds ALIVE, has heard on the topic itself (``Member.firsthand``) and that report
  themselves ``healthy``; ties go to the smallest peer ID.
- Only when no member is healthy, the same rule picks among ``degraded`` members. Without
  this fallback the cluster could never start: ``election-health`` is one of every node's
  own checks, so while no admin exists every node fails it, none is healthy, and none could
  ever become admin. A degraded admin hands over as soon as any member is healthy.
- The choice is a pure function of the view, so every node whose view agrees elects the
  same admin without exchanging a single message.
- No eligible member: no admin (None).

Start times come from each member's own digest, so clock differences between nodes do not
make two observers disagree; they only decide who counts as "longest running".

``ElectionTracker`` watches the result over time for the ``election-health`` check
(non-critical, every 15 s): the current admin and its uptime, every change of leadership,
how many changes the last ``window`` seconds saw, and a stability fraction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mesh.messages import MemberState
from mesh.model import Status

__all__ = [
    "DEFAULT_MAX_CHANGES",
    "DEFAULT_WINDOW",
    "ELECTION_HEALTH",
    "Candidate",
    "ElectionHealth",
    "ElectionTracker",
    "LeadershipChange",
    "elect_admin",
    "eligible",
]

DEFAULT_WINDOW = 300.0  # seconds of leadership history the stability numbers look at
DEFAULT_MAX_CHANGES = 3  # changes within the window beyond which the election is unstable
# The reference's check name ("Election Health Check"). Here, not in the gossip adapter
# that builds the check, so probes.enhanced can recognise its results without importing it.
ELECTION_HEALTH = "election-health"


class Candidate(Protocol):
    """What the election reads of a member: a ``Member`` copy, or the view's own record
    (``ClusterView.candidates``), which spares a copy of every member per election."""

    @property
    def node_id(self) -> str: ...
    @property
    def state(self) -> MemberState: ...
    @property
    def status(self) -> Status: ...
    @property
    def start_time(self) -> float: ...
    @property
    def firsthand(self) -> bool: ...


def eligible(member: Candidate, status: Status = Status.HEALTHY) -> bool:
    # Firsthand: heard on the topic by this node, not only listed in a pulled view.
    return member.state is MemberState.ALIVE and member.status is status and member.firsthand


def elect_admin(members: Iterable[Candidate]) -> str | None:
    """The admin's peer ID, or None when no member is alive and healthy or degraded."""
    listed = list(members)
    for status in (Status.HEALTHY, Status.DEGRADED):
        candidates = [(m.start_time, m.node_id) for m in listed if eligible(m, status)]
        if candidates:
            return min(candidates)[1]
    return None


@dataclass(frozen=True, slots=True)
class LeadershipChange:
    at: float  # Unix seconds
    previous: str | None
    current: str | None


@dataclass(frozen=True, slots=True)
class ElectionHealth:
    admin: str | None
    admin_uptime: float | None  # seconds the admin's process has been running
    term: float | None  # seconds the admin has held the role, as observed here
    changes_total: int
    changes_in_window: int
    # Fraction of the window (or of the time observed, if shorter) since leadership last
    # changed: 1.0 when nothing changed in the window, near 0.0 just after a change, 0.0
    # without an admin.
    stability: float
    healthy: bool  # an admin exists and changes_in_window <= max_changes
    # Unix seconds of the newest leadership change, None before the first (the reference's
    # HealthMetrics.LastLeadershipChange).
    last_change: float | None = None


class ElectionTracker:
    """Records the elected admin at each ``observe`` and derives the election's health."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        max_changes: int = DEFAULT_MAX_CHANGES,
        keep: int = 100,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, got {window!r}")
        if max_changes < 0 or keep < 1:
            raise ValueError("max_changes must be >= 0 and keep >= 1")
        self.window = window
        self.max_changes = max_changes
        self._changes: deque[LeadershipChange] = deque(maxlen=keep)
        self._total = 0
        self._started: float | None = None  # first observation
        self._admin: str | None = None
        self._admin_start: float | None = None  # the admin's start_time
        self._term_start: float | None = None  # when the current leadership began

    @property
    def admin(self) -> str | None:
        return self._admin

    def changes(self) -> list[LeadershipChange]:
        """Newest first (the most recent ``keep``)."""
        return list(reversed(self._changes))

    def observe(self, members: Iterable[Candidate], now: float) -> LeadershipChange | None:
        """Elect from ``members`` at ``now``; returns the change, if leadership changed.

        The first observation sets the baseline and is not a change."""
        listed = list(members)
        admin = elect_admin(listed)
        start = next((m.start_time for m in listed if m.node_id == admin), None)
        if self._started is None:
            self._started = now
            self._admin, self._admin_start, self._term_start = admin, start, now
            return None
        self._admin_start = start
        if admin == self._admin:
            return None
        change = LeadershipChange(now, self._admin, admin)
        self._changes.append(change)
        self._total += 1
        self._admin, self._term_start = admin, now
        return change

    def health(self, now: float) -> ElectionHealth:
        recent = sum(1 for c in self._changes if c.at > now - self.window)
        admin = self._admin
        uptime = (
            max(0.0, now - self._admin_start)
            if admin is not None and self._admin_start is not None
            else None
        )
        term = (
            max(0.0, now - self._term_start)
            if admin is not None and self._term_start is not None
            else None
        )
        return ElectionHealth(
            admin=admin,
            admin_uptime=uptime,
            term=term,
            changes_total=self._total,
            changes_in_window=recent,
            stability=self._stability(now),
            healthy=admin is not None and recent <= self.max_changes,
            last_change=self._changes[-1].at if self._changes else None,
        )

    def _stability(self, now: float) -> float:
        if self._admin is None or self._started is None or self._term_start is None:
            return 0.0
        observed = min(self.window, now - self._started)
        if observed <= 0:
            return 1.0
        stable = now - max(self._term_start, now - self.window)
        return min(1.0, max(0.0, stable / observed))
