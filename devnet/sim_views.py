"""Read-only views of a simulated mesh (re-exported by :mod:`devnet.testing`).

:class:`View` is one node's cluster view at one moment (a :class:`PeerState` per member,
the rows of ``/health/cluster``); :class:`MeshSnapshot` holds every reachable live node's
view, taken together, with the predicates a scenario waits on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from devnet.sim_nodes import SimNode
from mesh.messages import MemberState

__all__ = [
    "ALIVE",
    "DEAD",
    "LEFT",
    "SUSPECT",
    "MeshSnapshot",
    "PeerState",
    "View",
]

ALIVE, SUSPECT, DEAD, LEFT = (str(s) for s in MemberState)


@dataclass(frozen=True, slots=True)
class PeerState:
    """One member as one node's view holds it (a row of ``/health/cluster``)."""

    peer_id: str
    name: str | None  # the simulation's name for it, None for a stranger (a rogue)
    state: str  # alive / suspect / dead / left
    status: str  # what the member says of itself
    incarnation: int
    start_time: str
    suspected_by: tuple[str, ...]
    last_seen_age: float | None  # seconds since its last new statement; None for self
    history: tuple[Mapping[str, Any], ...]  # newest first: {"at", "from", "to", "cause"}

    def ever(self, state: str) -> bool:
        """Whether the (bounded, newest-first) history shows a move to ``state``."""
        return any(entry.get("to") == state for entry in self.history)


@dataclass(frozen=True, slots=True)
class View:
    """One node's cluster view at one moment."""

    node: str  # the observer's simulation name
    node_id: str
    status: str
    admin: str | None
    peers: Mapping[str, PeerState]  # by peer id, the observer itself included

    def state_of(self, who: SimNode | str) -> str | None:
        """alive / suspect / dead / left, or None when the view does not hold it."""
        peer = self.peers.get(who.peer_id if isinstance(who, SimNode) else who)
        return None if peer is None else peer.state

    def peer(self, who: SimNode | str) -> PeerState | None:
        return self.peers.get(who.peer_id if isinstance(who, SimNode) else who)

    def with_state(self, state: str) -> frozenset[str]:
        return frozenset(p for p, s in self.peers.items() if s.state == state)

    @property
    def alive(self) -> frozenset[str]:
        return self.with_state(ALIVE)


def _view_from_json(name: str, body: Mapping[str, Any], names: Mapping[str, str]) -> View:
    peers = {}
    for row in body.get("peers", ()):
        peer_id = str(row["peer_id"])
        peers[peer_id] = PeerState(
            peer_id=peer_id,
            name=names.get(peer_id),
            state=str(row["state"]),
            status=str(row["status"]),
            incarnation=int(row.get("incarnation", 0)),
            start_time=str(row.get("start_time", "")),
            suspected_by=tuple(row.get("suspected_by", ())),
            last_seen_age=row.get("last_seen_age"),
            history=tuple(row.get("history", ())),
        )
    return View(
        node=name,
        node_id=str(body["node_id"]),
        status=str(body.get("status", "")),
        admin=body.get("admin"),
        peers=peers,
    )


class MeshSnapshot(Mapping[str, View]):
    """Every reachable live node's view, taken together; a mapping of node name to View.

    Frozen nodes and nodes that did not answer are absent (``unreachable`` names them).
    ``expected`` holds, per observer, the peer ids it should see alive: the live nodes
    (running, not frozen) it can reach across the current partition.
    """

    def __init__(
        self,
        views: Mapping[str, View],
        *,
        expected: Mapping[str, frozenset[str]],
        names: Mapping[str, str],
        unreachable: Iterable[str] = (),
        taken_at: float = 0.0,
    ) -> None:
        self._views = dict(views)
        self.expected = dict(expected)
        self.names = dict(names)  # peer id -> simulation name
        self.unreachable = tuple(unreachable)
        self.taken_at = taken_at

    def __getitem__(self, node: SimNode | str) -> View:
        return self._views[node.name if isinstance(node, SimNode) else node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def _observers(self, observers: Iterable[SimNode | str] | None, exclude: str) -> list[View]:
        if observers is None:
            return [v for v in self._views.values() if v.node_id != exclude]
        names = [o.name if isinstance(o, SimNode) else o for o in observers]
        # An observer we could not read counts as not seeing anything.
        return [self._views[n] if n in self._views else _EMPTY for n in names]

    def all_see(
        self,
        peer: SimNode | str,
        state: str | Iterable[str],
        *,
        observers: Iterable[SimNode | str] | None = None,
    ) -> bool:
        """Whether every observer (default: every view but the peer's own) holds ``peer``
        in ``state`` (or one of several states)."""
        wanted = {state} if isinstance(state, str) else set(state)
        peer_id = peer.peer_id if isinstance(peer, SimNode) else peer
        views = self._observers(observers, peer_id)
        return bool(views) and all(v.state_of(peer_id) in wanted for v in views)

    def none_see(
        self,
        peer: SimNode | str,
        state: str | Iterable[str],
        *,
        observers: Iterable[SimNode | str] | None = None,
    ) -> bool:
        """Whether no observer holds ``peer`` in ``state`` (or one of several states)."""
        wanted = {state} if isinstance(state, str) else set(state)
        peer_id = peer.peer_id if isinstance(peer, SimNode) else peer
        return not any(v.state_of(peer_id) in wanted for v in self._observers(observers, peer_id))

    def lagging(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """Per observer whose alive set is not what it should be: (missing, extra) names."""
        out = {}
        for name, expected in self.expected.items():
            view = self._views.get(name)
            alive = view.alive if view is not None else frozenset()
            if alive != expected:
                missing = frozenset(self.names.get(p, p) for p in expected - alive)
                extra = frozenset(self.names.get(p, p) for p in alive - expected)
                out[name] = (missing, extra)
        return out

    def converged(self) -> bool:
        """Every live reachable node sees exactly the live nodes it can reach as alive,
        and nobody else (nothing suspect, no stranger, no dead node alive)."""
        return not self.unreachable and not self.lagging()

    def describe(self) -> str:
        """One line per view: its members by state, by simulation name."""
        lines = []
        for name, view in sorted(self._views.items(), key=lambda kv: _natural(kv[0])):
            parts = []
            for state in (ALIVE, SUSPECT, DEAD, LEFT):
                members = sorted(
                    (self.names.get(p, p[:12]) for p in view.with_state(state)), key=_natural
                )
                if members:
                    parts.append(f"{state} {','.join(members)}")
            lines.append(f"  {name}: {'; '.join(parts) or 'empty'}")
        for name in self.unreachable:
            lines.append(f"  {name}: (no answer)")
        return "\n".join(lines)


_EMPTY = View(node="", node_id="", status="", admin=None, peers={})


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))
