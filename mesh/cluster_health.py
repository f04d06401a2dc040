"""The cluster as a whole, as one view sees it: a status, a score and a message.

What ``/health/cluster`` reports for the cluster as a whole (``mesh.cluster_json``) and the
cluster score the node records; computed from the member table on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mesh.cluster_roster import MemberRecord, Roster
from mesh.cluster_transitions import ALIVE, DEAD, LEFT, SUSPECT
from mesh.messages import MemberState
from mesh.model import Status

__all__ = ["ClusterHealth", "cluster_health"]


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    """The cluster as a whole, as this view sees it.

    - ``score``: mean over members that did not leave of their reported score, halved while
      suspect, 0 when dead.
    - ``status``: STARTING with no members yet, STOPPING once we left; UNHEALTHY when at
      least half the members that did not leave are dead (no majority left); DEGRADED when
      any is suspect or dead or reports itself other than healthy; HEALTHY otherwise.
    """

    status: Status
    score: float
    counts: Mapping[MemberState, int]
    message: str


def cluster_health(roster: Roster) -> ClusterHealth:
    """The health of the cluster as ``roster`` sees it (see ``ClusterHealth``)."""
    counts = roster.counts()
    me = roster.records.get(roster.self_id)
    if not roster.records:
        return ClusterHealth(Status.STARTING, 0.0, counts, "No members known yet")
    if me is not None and me.state is LEFT:
        return ClusterHealth(Status.STOPPING, 0.0, counts, "This node has left")
    present = {p: r for p, r in roster.records.items() if r.state is not LEFT}
    if not present:
        return ClusterHealth(Status.STARTING, 0.0, counts, "Every known member has left")
    score = sum(_weighted_score(r) for r in present.values()) / len(present) if present else 0.0
    unwell = sorted(p for p, r in present.items() if r.digest.status is not Status.HEALTHY)
    if counts[DEAD] * 2 >= len(present):
        # Half or more of the cluster is dead: no majority left.
        status = Status.UNHEALTHY
        message = f"{counts[DEAD]} of {len(present)} members dead"
    elif counts[SUSPECT] or counts[DEAD]:
        status = Status.DEGRADED
        message = f"{counts[SUSPECT]} suspect, {counts[DEAD]} dead of {len(present)} members"
    elif unwell:
        status = Status.DEGRADED
        message = f"Members not healthy: {', '.join(unwell)}"
    else:
        status = Status.HEALTHY
        message = f"All {len(present)} members alive and healthy"
    return ClusterHealth(status, score, counts, message)


def _weighted_score(record: MemberRecord) -> float:
    if record.state is ALIVE:
        return record.digest.score
    if record.state is SUSPECT:
        return record.digest.score / 2.0
    return 0.0
