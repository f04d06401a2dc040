"""The nodes' cluster views, side by side (re-exported by :mod:`devnet.cluster`): whether
they agree, a snapshot of every running node's whole view, the light glance at them that
the waits and the bench poll with, and the HTTP asks behind both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.client import ClientError, ClusterView, NodeClient, NodeUnreachable, fetch_json
from devnet.cluster_procs import Proc
from devnet.cluster_settings import HTTP_TIMEOUT
from devnet.cluster_state import RunState

# What the waits and the bench ask each node for while they poll: only the members that are
# not alive, and the view's counts. Whole views from every node four times a second cost the
# nodes measurably (at 30 nodes and 2 polls a second, 11 % of each node's CPU: py-spy,
# 2026-12-03), on the two cores they share with the very thing being waited for or timed.
NOT_ALIVE = "/health/cluster?state=suspect,dead,left"


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


def light_view(body: Mapping[str, Any], names: Mapping[str, int]) -> dict[int, str]:
    """Member -> state, for the devnet's members (``names``: peer id -> index), from a
    :data:`NOT_ALIVE` answer: the members it lists in their states, and every other member
    alive when the view's alive count says exactly they are; otherwise (a member not heard
    of yet) the others are left out. This assumes the view holds devnet members only, as
    under the admission policy every bench run uses: with strangers admitted, a missing
    member and an alive stranger would cancel out in the count."""
    listed: dict[int, str] = {}
    for peer in body.get("peers", []):
        if isinstance(peer, dict) and str(peer.get("peer_id")) in names:
            listed[names[str(peer["peer_id"])]] = str(peer.get("state"))
    others = [index for index in names.values() if index not in listed]
    counts = body.get("counts")
    alive = counts.get("alive") if isinstance(counts, dict) else None
    if alive == len(others):
        listed.update(dict.fromkeys(others, "alive"))
    return listed


@dataclass
class Glance:
    """Every running node's :data:`NOT_ALIVE` answer at one moment, each reduced by
    :func:`light_view` to the states of the running members: all that convergence needs,
    without the whole views a :class:`Snapshot` costs the nodes."""

    taken_at: float
    expected: dict[int, str]  # the running nodes (index -> peer id), as Snapshot.expected
    views: dict[int, dict[int, str]]  # node -> running member -> state
    admins: dict[int, str | None]
    alive: dict[int, int | None]  # each view's own alive count, for the message
    errors: dict[int, str]
    unserved: tuple[int, ...] = ()  # nodes with no /health/cluster at all (404)

    def agreement(self) -> Agreement:
        """The same test as :func:`agreement`: every running node sees exactly the running
        nodes alive and all of them name the same admin. "Exactly" rests on the count, so
        on :func:`light_view`'s premise of no strangers in the views, and for members the
        devnet no longer runs on :func:`counted_gone`."""
        agreeing = tuple(
            i
            for i in sorted(self.expected)
            if i in self.views and all(self.views[i].get(j) == "alive" for j in self.expected)
        )
        return Agreement(
            agreeing=agreeing,
            expected=tuple(sorted(self.expected)),
            admins=frozenset(self.admins[i] for i in agreeing),
        )

    def disagreement(self) -> str:
        parts = []
        for i in sorted(self.expected):
            seen = self.views.get(i)
            if seen is None:
                parts.append(f"node{i} {self.errors.get(i, 'has no cluster view')}")
                continue
            if all(seen.get(j) == "alive" for j in self.expected):
                parts.append(f"node{i} admin {self.admins.get(i)}")
                continue
            # Which running member is missing is not in a light answer; the count says how many.
            listed = ",".join(f"node{j} {s}" for j, s in sorted(seen.items()) if s != "alive")
            parts.append(
                f"node{i} counts {self.alive.get(i)} alive of {len(self.expected)} running,"
                f" lists {listed or '-'}"
            )
        return "; ".join(parts) or "no node runs"


def counted_gone(
    url: str, body: Mapping[str, Any], gone: Mapping[str, int], timeout: float = HTTP_TIMEOUT
) -> str | None:
    """Why a view whose alive count matches the running nodes may still not see exactly
    them, or None. A member the devnet no longer runs (``gone``: peer id -> index) that the
    :data:`NOT_ALIVE` answer does not list is either alive in the view, in place of a
    running member it never heard of, or forgotten there; only asking for it tells (404:
    forgotten)."""
    listed = {
        str(peer.get("peer_id")): peer.get("state")
        for peer in body.get("peers", [])
        if isinstance(peer, dict)
    }
    for peer, index in sorted(gone.items(), key=lambda item: item[1]):
        # Listed alive: a node that ignored the state filter and sent its whole view.
        if peer in listed and listed[peer] != "alive":
            continue
        if peer not in listed and get_json(f"{url}/health/cluster/{peer}", timeout)[0] == 404:
            continue
        return f"may count node{index} (not running) alive in place of a running member"
    return None
