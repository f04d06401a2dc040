"""Token buckets for answering peers: a global budget, one per origin, and named pools.

The probe responder (``probes.probe_responder``) answers within a per-origin and a shared
rate, and serves origins it has not proven from a pool of their own; the gossip service
bounds its publishes, pulls and dials with the same buckets (``adapters.gossip``). Times
are passed in, so the rules are tested with plain numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full. Times are passed in."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate!r}, {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        # max(): a clock that steps back must not mint negative time.
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """A global bucket plus one per key (origin); the per-key buckets are bounded LRU.

    The per-origin bucket keeps one chatty or hostile origin from using up the global
    budget that honest origins need. A call may name another shared bucket (``pool``) in
    place of the global one: the responder serves new origins from a budget of their own.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        per_key_rate: float,
        per_key_burst: float,
        max_keys: int = 1024,
        now: float = 0.0,
    ) -> None:
        self._global = TokenBucket(rate, burst, now)
        self._per_key_rate = per_key_rate
        self._per_key_burst = per_key_burst
        self._max_keys = max_keys
        self._keys: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float, *, pool: TokenBucket | None = None) -> bool:
        return self.refusal(key, now, pool=pool) is None

    def refusal(
        self, key: str, now: float, *, pool: TokenBucket | None = None
    ) -> Literal["per_key", "shared"] | None:
        """None when ``key`` may go now; else which budget refused it: its own
        (``per_key``) or the shared one (``pool``, the global bucket by default)."""
        bucket = self._keys.get(key)
        if bucket is None:
            bucket = TokenBucket(self._per_key_rate, self._per_key_burst, now)
            self._keys[key] = bucket
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        self._keys.move_to_end(key)
        # Per key first: a refused origin must not spend a shared token.
        if not bucket.take(now):
            return "per_key"
        shared = self._global if pool is None else pool
        return None if shared.take(now) else "shared"
