"""Faults on one node at a time (a part of :class:`~devnet.testing.MeshNetwork`): crash,
leave, restart, freeze and thaw, CPU starvation. What each one models is in the table of
:mod:`devnet.testing`'s docstring.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import trio

from devnet.sim_errors import MachineTooSlow, SimulationError, UnsupportedFault, machine_load
from devnet.sim_nodes import SimNode, _signal
from devnet.sim_startup import _Startup
from mesh.errors import ConfigError

# The toolkit logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.testing")


class _NodeFaults(_Startup):
    """Crashing, stopping, restarting, freezing and starving nodes (built on starting
    nodes: a restart is a new life, dialled back into its links)."""

    async def crash(self, *nodes: SimNode | str) -> None:
        """Stop nodes abruptly, all at once: no leave, no drain (see module docs)."""
        targets = [self._require_running(x) for x in nodes]
        for node in targets:
            node.state = "crashed"
            node.starved = False
            if node._proc is not None:
                _signal(node._proc, signal.SIGKILL)
            elif node._scope is not None:
                await _close_listeners(node)
                node._scope.cancel()
        for node in targets:
            await self._wait_stopped(node, 15.0)

    async def leave(self, *nodes: SimNode | str, timeout: float = 30.0) -> None:
        """Gracefully stop nodes, all at once: the node's own shutdown, its leave notice."""
        targets = [self._require_running(x) for x in nodes]
        for node in targets:
            if node.state == "frozen":
                raise UnsupportedFault(f"{node.name} is frozen; thaw it before it can leave")
            node.state = "left"
            if node._proc is not None:
                _signal(node._proc, signal.SIGTERM)
            else:
                assert node.handle is not None
                node.handle.shutdown.request("simulation: leave")
        for node in targets:
            await self._wait_stopped(node, timeout)

    async def restart(self, *nodes: SimNode | str) -> None:
        """Start stopped nodes again with the same identity and ports; each dials its
        topology links (nodes still running are crashed first)."""
        targets = [self.node(x) for x in nodes]
        running = [n for n in targets if n.running]
        if running:
            await self.crash(*running)
        with self._joining():
            async with trio.open_nursery() as nursery:
                for node in targets:
                    nursery.start_soon(self._restart_one, node)

    async def _restart_one(self, node: SimNode) -> None:
        try:
            await self._start_node(node)
        except (ConfigError, SimulationError, ExceptionGroup) as exc:
            # The old port was taken meanwhile: a new one; peers learn it from the digest.
            logger.warning(
                "%s: restart on the same ports failed (%r); using new ports", node.name, exc
            )
            node.config = replace(node.config, p2p_port=0, health_port=0)
            await self._start_node(node)
        peers = [p for p in self._links_of(node) if p.live]
        if not peers:
            peers = [p for p in self.live if p is not node][-1:]
        await self._dial_all([(p.index, node.index) for p in peers])

    async def freeze(self, *nodes: SimNode | str) -> None:
        """SIGSTOP process nodes: sockets open, nothing answered (see module docs)."""
        for node in [self._require_running(x) for x in nodes]:
            proc = self._require_process(node, "freeze")
            _signal(proc, signal.SIGSTOP)
            node.state = "frozen"

    async def thaw(self, *nodes: SimNode | str) -> None:
        for node in [self.node(x) for x in nodes]:
            proc = self._require_process(node, "thaw")
            _signal(proc, signal.SIGCONT)
            if node.state == "frozen":
                node.state = "running"
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def frozen(self, *nodes: SimNode | str) -> AsyncIterator[None]:
        """``async with net.frozen(node): ...`` freezes, and thaws on the way out."""
        await self.freeze(*nodes)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                await self.thaw(*(n for n in nodes if self.node(n).running))

    @asynccontextmanager
    async def starved(
        self, node: SimNode | str, *, stopped: float = 0.7, period: float = 1.0
    ) -> AsyncIterator[None]:
        """Starve a process node of CPU while the block runs: SIGSTOP for ``stopped``
        seconds out of every ``period`` (CFS throttling's pattern). It keeps running,
        late; its loop-lag monitor sees the lag and the node calls itself starved."""
        target = self._require_running(node)
        proc = self._require_process(target, "starve")
        if not 0 < stopped < period:
            raise ValueError(f"need 0 < stopped < period, got {stopped}, {period}")
        target.starved = True

        async def duty_cycle() -> None:
            try:
                while True:
                    _signal(proc, signal.SIGSTOP)
                    await trio.sleep(stopped)
                    _signal(proc, signal.SIGCONT)
                    await trio.sleep(period - stopped)
            finally:
                _signal(proc, signal.SIGCONT)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(duty_cycle)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
                target.starved = False

    def _require_running(self, who: SimNode | str) -> SimNode:
        node = self.node(who)
        if not node.running:
            raise SimulationError(f"{node.name} is not running ({node.state})")
        return node

    def _require_process(self, node: SimNode, what: str) -> trio.Process:
        if node._proc is None:
            raise UnsupportedFault(
                f"cannot {what} in-process node {node.name}: every in-process node shares "
                "this test's event loop. Add the node with add_node(process=True)."
            )
        return node._proc

    async def _wait_stopped(self, node: SimNode, timeout: float) -> None:
        with trio.move_on_after(timeout * self.scale) as scope:
            if node._proc is not None:
                await node._proc.wait()
            else:
                await node._stopped.wait()
        if scope.cancelled_caught:
            raise MachineTooSlow(
                f"{node.name} did not stop within {timeout * self.scale:.0f} s. {machine_load()}"
            )


async def _close_listeners(node: SimNode) -> None:
    """Close an in-process node's listening sockets, as a dying process's kernel does:
    py-libp2p serves them from a trio system task that cancelling the node does not reach,
    so a "crashed" node would otherwise still accept dials (and never refuse a dial-back)."""
    if node.handle is None:
        return
    listeners = getattr(node.handle.p2p.host.get_network(), "listeners", {})
    # Out of the host's sight first: py-libp2p closes the sockets before it forgets them,
    # and an identify answered in that gap asks a closed socket its name (EBADF, which
    # takes the whole node down).
    closing = list(listeners.values())
    listeners.clear()
    for listener in closing:
        with trio.move_on_after(1.0), contextlib.suppress(Exception):
            await listener.close()
