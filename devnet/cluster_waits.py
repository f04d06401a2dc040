"""Looking at a running devnet (a part of :class:`~devnet.cluster.Devnet`): a snapshot of
every node's view, and bounded waits for readiness and convergence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from adapters.client import ClusterView
from devnet.cluster_errors import DevnetError, NotConverged
from devnet.cluster_procs import Proc, proc_state
from devnet.cluster_settings import HTTP_TIMEOUT
from devnet.cluster_state import _DevnetState
from devnet.cluster_views import Snapshot, _ask_cluster, _disagreement, agreement, get_json


class _Looking(_DevnetState):
    """Snapshots, readiness and convergence."""

    def snapshot(self, timeout: float = HTTP_TIMEOUT) -> Snapshot:
        """Ask every running node for its cluster view, in parallel (bounded by timeout)."""
        state = self.run.load()
        self.reap()
        procs = {i: proc_state(rec) for i, rec in state.nodes.items()}
        running = [i for i, p in procs.items() if p is Proc.RUNNING and state.nodes[i].health_port]
        # The same client as `chorus-health members` (adapters/client.py).
        futures = {
            i: self._pool.submit(_ask_cluster, state.nodes[i].http_url, timeout) for i in running
        }
        views: dict[int, ClusterView] = {}
        health: dict[int, dict[str, Any]] = {}
        errors: dict[int, str] = {}
        fallback: list[int] = []
        for i, future in futures.items():
            answer = future.result()
            if isinstance(answer, ClusterView):
                views[i] = answer
            elif answer.code == 404:
                fallback.append(i)  # a node without the cluster view: show /health instead
            else:
                errors[i] = answer.reason
        more = {
            i: self._pool.submit(get_json, state.nodes[i].http_url + "/health", timeout)
            for i in fallback
        }
        for i, pending in more.items():
            code, body = pending.result()
            if code and isinstance(body, dict):
                health[i] = body
            else:
                errors[i] = str(body)
        return Snapshot(time.time(), procs, views, health, errors)

    def wait_ready(self, timeout: float, progress: Callable[[str], None] | None = None) -> None:
        """Until every running node answers /health/ready with 200 (bounded)."""
        say = progress or (lambda _text: None)
        deadline = time.monotonic() + timeout
        while True:
            state = self.run.load()
            running = {i: r for i, r in state.nodes.items() if proc_state(r) is Proc.RUNNING}
            futures = {
                i: self._pool.submit(get_json, r.http_url + "/health/ready")
                for i, r in running.items()
            }
            ready = sorted(i for i, f in futures.items() if f.result()[0] == 200)
            say(f"ready: {len(ready)} of {len(state.nodes)} nodes")
            if running and len(ready) == len(state.nodes):
                return
            missing = sorted(set(state.nodes) - set(ready))
            if len(running) < len(state.nodes):
                gone = ", ".join(f"node{i}" for i in sorted(set(state.nodes) - set(running)))
                raise DevnetError(f"not every node is running ({gone} not)")
            if time.monotonic() > deadline:
                names = ", ".join(f"node{i}" for i in missing)
                raise DevnetError(f"not ready within {timeout:.0f}s: {names}")
            time.sleep(0.25)

    def wait_converged(
        self,
        timeout: float,
        progress: Callable[[str], None] | None = None,
        poll: float = 0.25,
    ) -> Snapshot:
        """Until every running node sees exactly the running nodes alive and all name the
        same admin; returns the snapshot that showed it. Bounded by ``timeout``."""
        say = progress or (lambda _text: None)
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            state = self.run.load()
            agreed = agreement(snap.views, snap.expected(state))
            if agreed.converged:
                return snap
            if snap.health and not snap.views:
                say("waiting for convergence: the nodes serve no /health/cluster yet")
            else:
                say(
                    f"waiting for convergence: {len(agreed.agreeing)} of"
                    f" {len(agreed.expected)} nodes see all {len(agreed.expected)} alive"
                )
            if time.monotonic() > deadline:
                raise NotConverged(
                    f"views did not converge within {timeout:.0f}s: {_disagreement(snap, state)}"
                )
            time.sleep(poll)
