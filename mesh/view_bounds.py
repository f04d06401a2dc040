"""How fast and how far a cluster view may grow: the join gate.

Anyone can mint libp2p identities for free, and in a cluster without an admission policy
each one can sign a digest of its own. Every member counts in the timing formulas (the
refresh interval and the silence timeout grow with n, the publish budget shrinks with it)
and in the election, so a view that took every new identity could be slowed, starved and
led by strangers (issue 12). The gate bounds both the size of the view and the rate at which
it takes new members, like a token bucket: ``join_burst`` at once (a joining node's first
pull), then ``join_rate`` a second. Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.rejection import Rejection, RejectReason

__all__ = ["JoinGate"]


@dataclass(slots=True)
class JoinGate:
    max_members: int
    burst: int
    rate: float
    _tokens: float = -1.0  # full on first use
    _last: float | None = None

    def admit(self, members: int, now: float) -> Rejection | None:
        """Whether a new member may join a view of ``members``; takes a token if so."""
        if members >= self.max_members:
            return Rejection(RejectReason.VIEW_FULL, f"the view holds {members} members")
        if self._last is None:
            self._tokens = float(self.burst)
        else:
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._last = now if self._last is None else max(self._last, now)
        if self._tokens < 1.0:
            return Rejection(RejectReason.JOIN_RATE, f"over {self.rate:g} new members a second")
        self._tokens -= 1.0
        return None
