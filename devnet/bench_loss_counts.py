"""What the loss soak counts (:mod:`devnet.bench_loss`): each side's polls as a
:class:`Tally` per phase, and the transitions in our views' histories, kept by
:class:`ChorusPoller` as the polls bring them in and counted per phase by
:func:`history_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from devnet.bench_soak import wall_time
from devnet.bench_target import ChorusTarget
from devnet.cluster import HTTP_TIMEOUT, Proc, get_json, proc_state

__all__ = ["COUNTED", "SAME_ENTRY", "ChorusPoller", "Entry", "Tally", "history_counts"]

COUNTED = ("dead", "suspect", "left")  # the states a poll counts a live member going into


@dataclass
class Tally:
    """What the 1 s polls of one side showed during one phase."""

    dead: int = 0
    suspect: int = 0
    left: int = 0
    polls: int = 0
    unanswered: int = 0
    # (observer, member) -> the state at the last poll; unseen pairs count as alive.
    previous: dict[tuple[int, int], str] = field(default_factory=dict)

    def observe(self, views: Mapping[int, Mapping[int, str]], n: int) -> None:
        """One poll: every change of a pair into dead, suspect or left counts once."""
        self.polls += 1
        self.unanswered += n - len(views)
        for observer, members in views.items():
            for member, state in members.items():
                key = (observer, member)
                if state != self.previous.get(key, "alive") and state in COUNTED:
                    setattr(self, state, getattr(self, state) + 1)
                self.previous[key] = state

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "previous"}


# One history entry as an observer listed it: (observer, peer id, to, wall-clock time).
Entry = tuple[int, str, str, float]
# A node derives each entry's wall time afresh for every answer (wall_now - (now - t),
# mesh/cluster_json.py), so the same transition comes back a few microseconds apart from
# poll to poll. Entries of one pair and state closer than this are one transition: going
# suspect, alive and suspect again within it takes more than a ping round.
SAME_ENTRY = 0.25


class ChorusPoller:
    """Polls every node's GET /health/cluster as ChorusTarget.views does, and keeps every
    history entry the answers carry. A member's history in that body shows only its 5
    newest transitions (mesh/cluster_json.py), fewer than a member flapping under 20 %
    loss makes in a phase: read once at the end, it would forget false deaths."""

    def __init__(self, target: ChorusTarget, query: str = "") -> None:
        self.target = target
        self.query = query  # e.g. "?state=suspect,dead,left": only those members come back
        self.entries: set[Entry] = set()
        self.counts: dict[int, dict[str, int]] = {}  # observer -> its whole view's counts
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="loss-http")

    def views(self) -> dict[int, dict[int, str]]:
        state = self.target.devnet.state()
        names = state.by_peer()
        asked = {
            i: self._pool.submit(
                get_json, rec.http_url + "/health/cluster" + self.query, HTTP_TIMEOUT
            )
            for i, rec in state.nodes.items()
            if proc_state(rec) is Proc.RUNNING
        }
        views: dict[int, dict[int, str]] = {}
        self.counts = {}
        for i, future in asked.items():
            code, body = future.result()
            if code != 200 or not isinstance(body, dict):
                continue
            views[i] = {}
            counts = body.get("counts")
            if isinstance(counts, dict):
                self.counts[i] = {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
            for peer in body.get("peers", []):
                peer_id = str(peer.get("peer_id"))
                if peer_id in names:
                    views[i][names[peer_id]] = str(peer.get("state"))
                for step in peer.get("history", []):
                    at = round(wall_time(step.get("at")), 2)  # rounded: fewer near-duplicates
                    self.entries.add((i, peer_id, str(step.get("to")), at))
        return views

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def history_counts(
    entries: Iterable[Entry], windows: Sequence[tuple[float, float]]
) -> list[dict[str, int]]:
    """Per wall-clock window: the distinct transitions into dead and into suspect (a false
    death shorter than a poll interval still shows there)."""
    found = [{"dead": 0, "suspect": 0} for _ in windows]
    last: dict[tuple[int, str, str], float] = {}
    for observer, peer, to, when in sorted(entries, key=lambda e: (e[0], e[1], e[2], e[3])):
        key = (observer, peer, to)
        repeat = key in last and when - last[key] < SAME_ENTRY
        last[key] = when
        if repeat or to not in found[0]:
            continue
        for k, (start, end) in enumerate(windows):
            if start <= when < end:
                found[k][to] += 1
    return found
