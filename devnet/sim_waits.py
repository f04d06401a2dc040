"""Waiting on the mesh with bounded time, and the reports of a wait that fails (a part of
:class:`~devnet.testing.MeshNetwork`): a plain :class:`MeshTimeout` with every view, or
:class:`MachineTooSlow` when the shared event loop could not keep up meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from devnet.sim_errors import MachineTooSlow, MeshTimeout, machine_load
from devnet.sim_hooks import _Hooks
from devnet.sim_nodes import SimNode
from devnet.sim_reading import _Reading
from devnet.sim_settings import BUSY_LIMIT, DEFAULT_WAIT, DEFAULT_WAIT_PER_NODE, POLL, POLL_PER_NODE
from devnet.sim_views import MeshSnapshot


class _Waits(_Reading, _Hooks):
    """Bounded waits on snapshots and metrics, and the machine-too-slow verdict (built on
    reading the nodes, and on the hooks' record of failed pings)."""

    def default_timeout(self) -> float:
        """Default bound of a wait: 30 s + 1.5 s per node, times CHORUS_MESH_TIME_SCALE."""
        return (DEFAULT_WAIT + DEFAULT_WAIT_PER_NODE * len(self.nodes)) * self.scale

    async def until(
        self,
        predicate: Callable[[MeshSnapshot], bool],
        *,
        timeout: float | None = None,
        what: str | None = None,
        poll: float | None = None,
    ) -> MeshSnapshot:
        """Wait until ``predicate(snapshot)`` holds; return that snapshot.

        Raises MeshTimeout (an AssertionError) after ``timeout`` seconds (default
        :meth:`default_timeout`), or MachineTooSlow when the event loop lagged beyond
        ``lag_limit`` meanwhile. Both messages show every view."""
        timeout = self.default_timeout() if timeout is None else timeout
        what = what or getattr(predicate, "__name__", "condition")
        started = trio.current_time()
        last: MeshSnapshot | None = None
        with trio.move_on_after(timeout):
            while True:
                last = await self.snapshot()
                if predicate(last):
                    return last
                await trio.sleep(self._poll(poll))
        raise self._failure(f"timed out after {timeout:.0f} s waiting for {what}", last, started)

    async def until_converged(self, *, timeout: float | None = None) -> MeshSnapshot:
        """Wait until every live node sees exactly the live nodes it can reach as alive."""
        return await self.until(MeshSnapshot.converged, timeout=timeout, what="convergence")

    async def holds(
        self,
        predicate: Callable[[MeshSnapshot], bool],
        *,
        seconds: float,
        what: str | None = None,
        poll: float | None = None,
    ) -> MeshSnapshot:
        """Check that ``predicate`` holds at every look for ``seconds``; AssertionError
        (or MachineTooSlow) at the first look where it does not."""
        what = what or getattr(predicate, "__name__", "condition")
        started = trio.current_time()
        deadline = started + seconds
        while True:
            snap = await self.snapshot()
            if not predicate(snap):
                elapsed = trio.current_time() - started
                raise self._failure(f"{what} stopped holding after {elapsed:.1f} s", snap, started)
            if trio.current_time() >= deadline:
                return snap
            await trio.sleep(self._poll(poll))

    async def until_metric(
        self,
        node: SimNode | str,
        name: str,
        condition: float | Callable[[float], bool],
        *,
        timeout: float | None = None,
        **labels: str,
    ) -> float:
        """Wait until the node's metric sample equals ``condition`` (or satisfies it, if
        it is a function); return the value. MeshTimeout or MachineTooSlow after
        ``timeout`` (default :meth:`default_timeout`)."""
        timeout = self.default_timeout() if timeout is None else timeout
        started = trio.current_time()
        value = math.nan
        with trio.move_on_after(timeout):
            while True:
                value = await self.metric(node, name, **labels)
                if condition(value) if callable(condition) else value == condition:
                    return value
                await trio.sleep(POLL / 2)
        wanted = "the condition" if callable(condition) else condition
        raise self._failure(
            f"{self.node(node).name}: {name}{labels or ''} is {value}, not {wanted} after "
            f"{timeout:.0f} s",
            None,
            started,
        )

    def _poll(self, poll: float | None) -> float:
        return poll if poll is not None else max(POLL, POLL_PER_NODE * len(self.live))

    def lag_since(self, since: float) -> float:
        """Largest event-loop lag seen since ``since`` (trio time), seconds."""
        return self._lag.max_since(since)

    @property
    def max_lag(self) -> float:
        """Largest event-loop lag seen since the network started, seconds."""
        return self._lag.max_lag

    @property
    def too_slow(self) -> bool:
        """Whether the machine failed to keep up at some point: the event loop lagged
        beyond ``lag_limit``, was busy beyond BUSY_LIMIT of a core outside node start-ups,
        or a ping between two in-process nodes failed."""
        return self._too_slow_since(-math.inf)

    def _too_slow_since(self, since: float) -> bool:
        return (
            self._lag.max_since(since) > self.lag_limit
            or self._lag.busy_since(since, self._startups) > BUSY_LIMIT
            or bool(self.spurious_ping_failures(since))
        )

    def slowness_report(self, since: float = -math.inf) -> str:
        """Why the machine counts as too slow (for messages)."""
        busy = self._lag.busy_since(since, self._startups)
        pings = self.spurious_ping_failures(since)
        ping_text = ""
        if pings:
            pairs = ", ".join(f"{a}->{b}" for _, a, b in pings[:5])
            ping_text = (
                f" {len(pings)} ping(s) between in-process nodes timed out ({pairs}), so "
                "py-libp2p aborted healthy connections."
            )
        return (
            f"machine too slow for {len(self.running)} node(s) in one process: the event "
            f"loop lagged up to {self._lag.max_since(since):.2f} s (limit "
            f"{self.lag_limit:.2f} s, the nodes' own starvation threshold) and was busy up "
            f"to {busy:.0%} of a core (limit {BUSY_LIMIT:.0%}).{ping_text} {machine_load()}"
        )

    def _failure(self, message: str, snap: MeshSnapshot | None, since: float) -> Exception:
        views = snap.describe() if snap is not None else "  (no snapshot taken)"
        if self._too_slow_since(since):
            return MachineTooSlow(
                f"{message}; not a verdict on the mesh: {self.slowness_report(since)}\n"
                f"Views:\n{views}"
            )
        lag = self._lag.max_since(since)
        return MeshTimeout(f"{message} (event-loop lag at most {lag:.2f} s). Views:\n{views}")
