"""A probe's newest outcome, for a second check on the same probe to read.

The reference has two checks on each network path: its Active PubSub and Active DHT checks
(every 60 s and 90 s) and the enhanced pubsub-enhanced and dht-enhanced (every 30 s and
60 s). Each ran its own probe, so an idle node probed each path twice and the probes were
over half its bytes (BENCHMARKS.md, "Where an idle node's bytes go"). Now the active
checks read the enhanced checks' outcome while it is fresh and probe only when it is not
(the enhanced check disabled, or late); the enhanced checks always probe, since their
success-rate window must count each probe once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

__all__ = ["LastOutcome"]

T = TypeVar("T")


class LastOutcome(Generic[T]):
    """``max_age`` (seconds, on trio's clock) is how old an outcome may be and still be
    read; 0, the default, shares nothing."""

    def __init__(self) -> None:
        self.max_age = 0.0
        self._value: T | None = None
        self._at = 0.0

    def put(self, value: T) -> T:
        self._value, self._at = value, trio.current_time()
        return value

    def fresh(self) -> T | None:
        """The newest outcome if it finished at most ``max_age`` ago, else None."""
        if self._value is None or self.max_age <= 0:
            return None
        return self._value if trio.current_time() - self._at <= self.max_age else None
