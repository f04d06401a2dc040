"""The nodes' cluster views, side by side (re-exported by :mod:`devnet.cluster`): whether
they agree, a snapshot of every running node's view, and the HTTP asks behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.client import ClientError, ClusterView, NodeClient, NodeUnreachable, fetch_json
from devnet.cluster_procs import Proc
from devnet.cluster_settings import HTTP_TIMEOUT
from devnet.cluster_state import RunState


@dataclass(frozen=True)
class Agreement:
    """How far the views of the expected nodes agree."""

    agreeing: tuple[int, ...]  # expected nodes whose alive set is exactly the expected set
    expected: tuple[int, ...]
    admins: frozenset[str | None]  # admins named by the agreeing nodes

    @property
    def converged(self) -> bool:
        return bool(self.expected) and self.agreeing == self.expected and len(self.admins) == 1


def agreement(views: Mapping[int, ClusterView], expected: Mapping[int, str]) -> Agreement:
    """Full agreement: every expected node (index -> peer id) answers, sees exactly the
    expected peers alive, and all of them name the same admin."""
    want = frozenset(expected.values())
    agreeing = tuple(i for i in sorted(expected) if i in views and views[i].alive() == want)
    return Agreement(
        agreeing=agreeing,
        expected=tuple(sorted(expected)),
        admins=frozenset(views[i].admin for i in agreeing),
    )


@dataclass
class Snapshot:
    """What every node said at one moment, plus what the OS says about its process."""

    taken_at: float
    procs: dict[int, Proc]
    views: dict[int, ClusterView]
    # /health bodies, asked only of nodes without /health/cluster (older nodes).
    health: dict[int, dict[str, Any]]
    errors: dict[int, str]

    def expected(self, state: RunState) -> dict[int, str]:
        """Nodes whose process runs: those every view should list as alive."""
        return {
            i: rec.peer_id
            for i, rec in state.nodes.items()
            if self.procs.get(i) is Proc.RUNNING and rec.peer_id
        }


def _ask_cluster(url: str, timeout: float) -> ClusterView | ClientError:
    try:
        return NodeClient(url, timeout=timeout).cluster()
    except ClientError as exc:
        return exc


def get_json(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """GET a JSON endpoint; (status, body), or (0, error text) when nothing answered."""
    try:
        return fetch_json(url, timeout=timeout)
    except NodeUnreachable as exc:
        return 0, exc.reason


def _disagreement(snap: Snapshot, state: RunState) -> str:
    expected = snap.expected(state)
    want = frozenset(expected.values())
    names = state.by_peer()
    parts = []
    for i in sorted(expected):
        view = snap.views.get(i)
        if view is None:
            parts.append(f"node{i} {snap.errors.get(i, 'has no cluster view')}")
            continue
        missing = sorted(f"node{names.get(p, '?')}" for p in want - view.alive())
        extra = sorted(f"node{names.get(p, '?')}" for p in view.alive() - want)
        if missing or extra:
            parts.append(
                f"node{i} misses {','.join(missing) or '-'}, extra {','.join(extra) or '-'}"
            )
        else:
            parts.append(f"node{i} admin {view.admin}")
    return "; ".join(parts) or "no node runs"
