"""Breaking and stopping a devnet's nodes (a part of :class:`~devnet.cluster.Devnet`): kill,
freeze, thaw, stop, down, partition and heal, and waiting for what they stop to be gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

from devnet.cluster_errors import DevnetError, UsageError
from devnet.cluster_netns import NetnsNet
from devnet.cluster_procs import Proc, proc_state, process_of
from devnet.cluster_settings import KILL_TIMEOUT, MAX_GROUPS, STOP_TIMEOUT
from devnet.cluster_state import NodeRecord, _DevnetState


class _Breaking(_DevnetState):
    """Faults on nodes and on the network, and stopping the devnet."""

    def _live(self, index: int) -> tuple[NodeRecord, psutil.Process]:
        rec = self.run.load().node(index)
        process = process_of(rec.pid, rec.create_time)
        if process is None:
            raise UsageError(f"{rec.name} is not running (start it with: restart {index})")
        return rec, process

    def kill(self, index: int) -> NodeRecord:
        """SIGKILL: the node vanishes without a word (a crash)."""
        rec, process = self._live(index)
        process.send_signal(signal.SIGKILL)
        self._wait_gone([rec], KILL_TIMEOUT)
        return rec

    def freeze(self, index: int) -> NodeRecord:
        """SIGSTOP: the process stays, its sockets stay open, it answers nothing."""
        rec, process = self._live(index)
        process.send_signal(signal.SIGSTOP)
        return rec

    def thaw(self, index: int) -> NodeRecord:
        """SIGCONT: a frozen node resumes, and must refute the others' verdict."""
        rec, process = self._live(index)
        process.send_signal(signal.SIGCONT)
        return rec

    def stop(self, index: int, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, a graceful leave; waits for the exit (bounded, then SIGKILL). Returns
        the exit code when this process is the node's parent, else None."""
        rec, _process = self._live(index)
        self._terminate([rec], timeout)
        return self.run.load().node(index).exit_code

    def down(self, timeout: float = STOP_TIMEOUT, force: Callable[[], bool] | None = None) -> None:
        """Stop every node gracefully (SIGTERM), SIGKILL whatever outlives ``timeout``, and
        tell the ``up`` process owning the run (if it is not us) to finish."""
        if not self.run.exists():
            return
        state = self.run.load()
        controller = process_of(state.controller_pid, state.controller_create_time)
        if controller is not None and controller.pid != os.getpid():
            with contextlib.suppress(psutil.Error):
                controller.send_signal(signal.SIGTERM)
        try:
            self._terminate(list(state.nodes.values()), timeout, force)
        finally:
            if state.netns:
                NetnsNet(self.run.root).destroy(max(state.nodes, default=0))

    def partition(self, groups: Sequence[Sequence[int]]) -> list[list[int]]:
        """Cut the devnet into groups that cannot reach each other (a --netns devnet);
        one group means: it against all the other nodes."""
        with self.run.update() as state:
            if not state.netns:
                raise UsageError(
                    "partitions need a devnet started with: up --netns (root and iproute2)"
                )
            chosen = [sorted(set(group)) for group in groups]
            for group in chosen:
                for i in group:
                    state.node(i)
            flat = [i for group in chosen for i in group]
            if len(flat) != len(set(flat)):
                raise UsageError("a node can be in one group only")
            if len(chosen) == 1:
                chosen.append(sorted(set(state.nodes) - set(flat)))
            if any(not group for group in chosen):
                raise UsageError("a partition needs two non-empty groups")
            if len(chosen) > MAX_GROUPS:
                raise UsageError(f"a partition has at most {MAX_GROUPS} groups")
            NetnsNet(self.run.root).cut(chosen)
            state.partition = chosen
        return chosen

    def heal(self) -> None:
        """Undo a partition."""
        with self.run.update() as state:
            if not state.netns:
                raise UsageError("this devnet has no partition (it was not started with --netns)")
            NetnsNet(self.run.root).heal(sorted(state.nodes))
            state.partition = None

    # --------------------------------------------------------------------- internals

    def _gone(self, rec: NodeRecord) -> bool:
        child = self._children.get(rec.index)
        if child is not None and child.pid == rec.pid:
            return child.poll() is not None
        return proc_state(rec) is Proc.EXITED

    def _wait_gone(self, recs: Sequence[NodeRecord], timeout: float) -> list[NodeRecord]:
        """Wait up to ``timeout`` for the processes to exit; returns the ones still there."""
        deadline = time.monotonic() + timeout
        left = [rec for rec in recs if not self._gone(rec)]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [rec for rec in left if not self._gone(rec)]
        self.reap()
        return left

    def _terminate(
        self,
        recs: Sequence[NodeRecord],
        timeout: float,
        force: Callable[[], bool] | None = None,
    ) -> None:
        """SIGTERM (thawing frozen ones so they can act on it), then SIGKILL after
        ``timeout`` or as soon as ``force()`` says so (a second Ctrl-C)."""
        live: list[tuple[NodeRecord, psutil.Process]] = []
        for rec in recs:
            process = process_of(rec.pid, rec.create_time)
            if process is None:
                continue
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGTERM)
                # A stopped process keeps SIGTERM pending until it runs again.
                process.send_signal(signal.SIGCONT)
                live.append((rec, process))
        deadline = time.monotonic() + timeout
        left = [rec for rec, _ in live]
        while left and time.monotonic() < deadline and not (force and force()):
            left = self._wait_gone(left, 0.2)
        for rec, process in live:
            if rec in left:
                with contextlib.suppress(psutil.Error):
                    process.send_signal(signal.SIGKILL)
        stuck = self._wait_gone(left, KILL_TIMEOUT)
        if stuck:
            names = ", ".join(f"{rec.name} pid {rec.pid}" for rec in stuck)
            raise DevnetError(f"could not stop {names}")
