"""A bounded log of check state transitions (the reference keeps 1000 history entries)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from mesh.flap import CheckState

DEFAULT_MAX_ENTRIES = 1000  # the reference's MaxHistoryEntries


@dataclass(frozen=True, slots=True)
class Transition:
    check: str
    from_state: CheckState
    to_state: CheckState
    at: float  # Unix seconds
    message: str  # the message of the result that caused the transition
    consecutive: int  # how many results in a row agreed when the state turned


class TransitionLog:
    """Newest-last, oldest dropped first once ``max_entries`` is reached."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("history needs room for at least one entry")
        self._entries: deque[Transition] = deque(maxlen=max_entries)

    def append(self, transition: Transition) -> None:
        self._entries.append(transition)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Transition]:
        return iter(self._entries)

    def recent(self, *, check: str | None = None, limit: int | None = None) -> list[Transition]:
        """Newest first, optionally for one check only."""
        picked = [t for t in reversed(self._entries) if check is None or t.check == check]
        return picked if limit is None else picked[:limit]
