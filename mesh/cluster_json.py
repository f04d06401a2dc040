"""The JSON bodies of GET /health/cluster and GET /health/cluster/<peer id>.

Pure: the cluster view and the times come in as values. The view keeps its own time
(``now``, the monotonic clock its timers run on); wall-clock instants are derived as
``wall_now - (now - t)``, so a step of the wall clock never reorders the history.

Shape of /health/cluster::

    {"node_id": "<our peer id>",
     "status": "healthy",            # the view's overall cluster status (ClusterView.health)
     "score": 0.97,                  # the view's cluster score in [0, 1]
     "admin": "<peer id>" | null,    # mesh.election.elect_admin over the members
     "counts": {"alive": 4, "suspect": 1, "dead": 0, "left": 0},
     "peers": [<member>, ...],       # sorted by peer_id; those the page selects
     "page": {"total": 5, "next": null},
                                     # members matching the filter, and the peer id to
                                     # pass as ?after= for the next page (mesh.cluster_page)
     "score_history": [{"at": "<RFC 3339>", "score": 0.97}, ...],
                                     # oldest first: the lowest score in each bucket of
                                     # the last hour (mesh.score_history)
     "timestamp": "2025-09-30T10:30:00.123Z"}

and of one member (also the body of /health/cluster/<peer id>)::

    {"peer_id": "...", "self": false,
     "state": "alive",               # alive / suspect / dead / left: the cluster's verdict
     "status": "healthy",            # what the member says of itself
     "score": 0.98, "components": {"p2p": 1.0, ...},
     "last_seen_age": 0.42,          # seconds since its last new statement; null for self
     "incarnation": 0, "start_time": "<RFC 3339>", "version": "v0.1.0",
     "http_addr": "...", "p2p_addrs": ["/ip4/.../p2p/..."],
     "suspected_by": ["<peer id>", ...],
     "local_health": 0,              # what it says of its own timing: 0 keeps time, more is
                                     # starved (a suspicion of it waits that much longer)
     "history": [{"at": "<RFC 3339>", "from": "alive", "to": "suspect",
                  "cause": "disconnected", "detail": "by <observer id>"},
                 ...]}                 # newest first, at most ``history``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mesh.cluster_page import EVERY, ClusterPage
from mesh.cluster_roster import Member
from mesh.cluster_transitions import Transition
from mesh.cluster_view import ClusterView
from mesh.election import elect_admin
from mesh.messages import MemberState
from mesh.score_history import ScorePoint
from mesh.timefmt import rfc3339

__all__ = ["DEFAULT_HISTORY", "cluster_json", "member_json", "peer_json"]

JSON = dict[str, Any]

DEFAULT_HISTORY = 5  # transitions shown per member: enough to see a flap, short to read


def cluster_json(
    view: ClusterView,
    *,
    now: float,
    wall_now: float,
    history: int = DEFAULT_HISTORY,
    scores: Sequence[ScorePoint] = (),
    page: ClusterPage = EVERY,
) -> JSON:
    """The view; ``now`` on the view's clock, ``wall_now`` Unix seconds; ``scores`` the
    cluster score's recent past, on the view's clock too; ``page`` which members to show
    (``mesh.cluster_page``). Status, score, admin and counts are always the whole view's."""
    health = view.health()
    counts = view.counts()
    shown, total, following = view.page(page)
    return {
        "node_id": view.self_id,
        "status": str(health.status),
        "score": health.score,
        "admin": elect_admin(view.candidates()),
        "counts": {str(state): counts[state] for state in MemberState},
        "peers": [
            member_json(member, self_id=view.self_id, now=now, wall_now=wall_now, history=history)
            for member in shown
        ],
        "page": {"total": total, "next": following},
        "score_history": [
            {"at": rfc3339(wall_now - (now - p.at)), "score": round(p.score, 4)} for p in scores
        ],
        "timestamp": rfc3339(wall_now),
    }


def peer_json(
    view: ClusterView,
    peer_id: str,
    *,
    now: float,
    wall_now: float,
    history: int = DEFAULT_HISTORY,
) -> JSON | None:
    """One member, or None when the view does not hold it (never heard of, or forgotten)."""
    member = view.member(peer_id)
    if member is None:
        return None
    return member_json(member, self_id=view.self_id, now=now, wall_now=wall_now, history=history)


def member_json(
    member: Member, *, self_id: str, now: float, wall_now: float, history: int = DEFAULT_HISTORY
) -> JSON:
    is_self = member.node_id == self_id
    return {
        "peer_id": member.node_id,
        "self": is_self,
        "state": str(member.state),
        "status": str(member.status),
        "score": member.score,
        "components": dict(sorted(member.components.items())),
        "last_seen_age": None if is_self else round(max(0.0, now - member.last_heard), 3),
        "incarnation": member.incarnation,
        "start_time": rfc3339(member.start_time),
        "version": member.version,
        "http_addr": member.http_addr,
        "p2p_addrs": list(member.p2p_addrs),
        "suspected_by": sorted(member.suspected_by),
        "local_health": member.local_health,
        "history": [
            transition_json(t, now=now, wall_now=wall_now) for t in _newest(member.history, history)
        ],
    }


def transition_json(transition: Transition, *, now: float, wall_now: float) -> JSON:
    return {
        "at": rfc3339(wall_now - (now - transition.at)),
        "from": _state(transition.from_state),
        "to": _state(transition.to_state),
        "cause": str(transition.cause),
        "detail": transition.detail,
    }


def _newest(transitions: tuple[Transition, ...], limit: int) -> list[Transition]:
    # Member.history is oldest first.
    return list(reversed(transitions[-limit:])) if limit > 0 else []


def _state(state: MemberState | None) -> str | None:
    return None if state is None else str(state)
