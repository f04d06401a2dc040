"""What runs on the view's clock: the failure detector's timers, the score's last hour and
the election.

Every ``tick_max`` seconds, or at the view's next deadline if that comes first, the view
hears whether this node is starved (a starved node suspects nobody) and how noisy its
network is (``adapters.link_timing``: late ping answers stretch its timeouts), runs its timers
(silence, suspicion, forgetting: ``ClusterView.tick``); the cluster score goes into the
dashboard's hourly chart, and the admin is elected again if a member changed state since
the last tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import trio

from mesh.cluster_events import Event
from mesh.cluster_view import ClusterView
from mesh.election import ElectionTracker
from mesh.score_history import ScoreHistory
from mesh.wake_grid import grid_after

__all__ = ["ViewTimers"]


class ViewTimers:
    """``run`` is the loop; ``apply`` carries out the events the timers raise, and
    ``loop_failed`` counts and logs an error caught here."""

    def __init__(
        self,
        view: ClusterView,
        election: ElectionTracker,
        score_history: ScoreHistory,
        *,
        apply: Callable[[Iterable[Event]], None],
        starved: Callable[[], bool],
        network: Callable[[], int],
        tick_max: float,
        loop_failed: Callable[[str, Exception], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._view = view
        self._election = election
        self._score_history = score_history
        self._apply = apply
        self._starved = starved
        self._network = network
        self._tick_max = tick_max
        self._loop_failed = loop_failed
        self._clock = clock
        self._wall = wall_clock
        self._election_dirty = True

    def membership_changed(self) -> None:
        """A member changed state: elect again at the next tick."""
        self._election_dirty = True

    async def run(self) -> None:
        while True:
            now = self._clock()
            deadline: float | None = None
            try:
                self._apply(self._view.set_starved(self._starved(), now))
                self._view.set_network_health(self._network())
                self._apply(self._view.tick(now))
                self._score_history.observe(now, lambda: self._view.health().score)
                if self._election_dirty:
                    self._election_dirty = False
                    self._election.observe(self._view.candidates(), self._wall())
                deadline = self._view.next_deadline()
            except Exception as exc:  # the timers must outlive any state a peer caused
                self._loop_failed("tick", exc)
            # The tick rides the node's wake grid (mesh/wake_grid.py); a deadline does not wait.
            wake = grid_after(now, self._tick_max)
            if deadline is not None:
                wake = min(wake, deadline)
            # A deadline already due was just handled; 10 ms keeps a busy loop impossible.
            await trio.sleep(max(0.01, wake - self._clock()))
