"""Which members a GET /health/cluster shows: a filter by state and a page by peer id.

At 10,000 members the whole view is about 4.7 MB of JSON and 175 ms to build (issue 15), too
much for a dashboard refresh or a Prometheus-style poll. The members are sorted by peer id,
so a page is a cursor, not an offset: ``after`` names the last peer id of the previous page
and the next page starts after it, and members joining or leaving between two requests
neither repeat nor skip the others (an offset would shift under them).

Query parameters, all optional (none at all gives every member, as before):

- ``state``: comma-separated states to keep, of alive, suspect, dead, left;
- ``limit``: at most this many members, 1 to ``MAX_LIMIT``;
- ``after``: only peer ids sorting after this one (a peer id's characters).

The body then says ``"page": {"total": <members matching the filter>, "next": <the peer id
to pass as after for the next page, or null on the last>}``.

Values come from any HTTP client, so each is checked against an ASCII pattern of bounded
length before use; a bad one is a ``ValueError`` whose message names the parameter.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from mesh.messages import MemberState

__all__ = ["EVERY", "MAX_LIMIT", "ClusterPage", "parse_page"]

MAX_LIMIT = 1000
_LIMIT = re.compile(r"[0-9]{1,4}")
# The same alphabet and bound as a peer id in a path (adapters/http_app.py).
_PEER_ID = re.compile(r"[0-9A-Za-z]{1,128}")
_STATES = {str(state): state for state in MemberState}
_MAX_STATE_LIST = 64  # "alive,suspect,dead,left" is 23 characters


class _Stated(Protocol):
    @property
    def state(self) -> MemberState: ...


M = TypeVar("M", bound=_Stated)


@dataclass(frozen=True)
class ClusterPage:
    """``states`` None keeps every state; ``limit`` None shows every match."""

    states: frozenset[MemberState] | None = None
    after: str | None = None
    limit: int | None = None

    def select(self, members: Mapping[str, M]) -> tuple[list[M], int, str | None]:
        """The page of ``members`` (by peer id), in peer id order; how many members match
        the filter in all; and the peer id to pass as ``after`` for the next page (None
        on the last)."""
        matching = sorted(
            (peer, member)
            for peer, member in members.items()
            if self.states is None or member.state in self.states
        )
        start = 0
        if self.after is not None:
            start = bisect_right([peer for peer, _ in matching], self.after)
        end = len(matching) if self.limit is None else min(len(matching), start + self.limit)
        page = matching[start:end]
        following = page[-1][0] if page and end < len(matching) else None
        return [member for _, member in page], len(matching), following


EVERY = ClusterPage()  # no filter, no limit: the whole view, as before paging


def parse_page(state: str | None, after: str | None, limit: str | None) -> ClusterPage:
    """The page the query asks for; ``ValueError`` naming the parameter if a value is bad."""
    states: frozenset[MemberState] | None = None
    if state is not None:
        names = state.split(",") if len(state) <= _MAX_STATE_LIST else [""]
        if not all(name in _STATES for name in names):
            raise ValueError("state must be a comma-separated list of alive, suspect, dead, left")
        states = frozenset(_STATES[name] for name in names)
    if after is not None and not _PEER_ID.fullmatch(after):
        raise ValueError("after must be a peer id (1 to 128 ASCII letters and digits)")
    count: int | None = None
    if limit is not None:
        if not _LIMIT.fullmatch(limit) or not 1 <= int(limit) <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
        count = int(limit)
    return ClusterPage(states, after, count)
