"""Looking at a running devnet (a part of :class:`~devnet.cluster.Devnet`): a snapshot of
every node's whole view (for the table), a light glance at them (for polling), and bounded
waits for readiness and convergence.
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
from devnet.cluster_views import (
    NOT_ALIVE,
    Glance,
    Snapshot,
    _ask_cluster,
    counted_gone,
    get_json,
    light_view,
)


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

    def glance(self, timeout: float = HTTP_TIMEOUT) -> Glance:
        """Ask every running node for the members it does not see alive and its view's
        counts (:data:`~devnet.cluster_views.NOT_ALIVE`), in parallel (bounded by timeout).
        Waits poll this and not :meth:`snapshot`, the same light query as the bench's:
        whole views from every node each second are load enough to start suspicion storms
        at 30 nodes."""
        state = self.run.load()
        self.reap()
        procs = {i: proc_state(rec) for i, rec in state.nodes.items()}
        expected = {
            i: rec.peer_id
            for i, rec in state.nodes.items()
            if procs[i] is Proc.RUNNING and rec.peer_id
        }
        urls = {
            i: state.nodes[i].http_url
            for i, p in procs.items()
            if p is Proc.RUNNING and state.nodes[i].health_port
        }
        futures = {
            i: self._pool.submit(get_json, url + NOT_ALIVE, timeout) for i, url in urls.items()
        }
        names = {peer: i for i, peer in expected.items()}
        glance = Glance(time.time(), expected, {}, {}, {}, {})
        bodies: dict[int, dict[str, Any]] = {}
        for i, future in futures.items():
            code, body = future.result()
            if code == 200 and isinstance(body, dict):
                bodies[i] = body
                glance.views[i] = light_view(body, names)
                admin, counts = body.get("admin"), body.get("counts")
                glance.admins[i] = admin if isinstance(admin, str) else None
                alive = counts.get("alive") if isinstance(counts, dict) else None
                glance.alive[i] = alive if isinstance(alive, int) else None
            elif code == 404:
                glance.unserved += (i,)
                glance.errors[i] = "serves no /health/cluster"
            else:
                glance.errors[i] = f"answered HTTP {code}" if code else str(body)
        # The count cannot tell a stopped node still counted alive from one forgotten: ask,
        # but only where the count alone would pass, so a usual poll stays one request.
        gone = {
            rec.peer_id: i for i, rec in state.nodes.items() if rec.peer_id and i not in expected
        }
        doubts = {
            i: self._pool.submit(counted_gone, urls[i], bodies[i], gone, timeout)
            for i, seen in glance.views.items()
            if gone and all(seen.get(j) == "alive" for j in expected)
        }
        for i, pending in doubts.items():
            reason = pending.result()
            if reason is not None:
                del glance.views[i]
                glance.errors[i] = reason
        return glance

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
    ) -> Glance:
        """Until every running node sees exactly the running nodes alive and all name the
        same admin; returns the glance that showed it. Bounded by ``timeout``. Polls with
        :meth:`glance`, not whole snapshots (see there)."""
        say = progress or (lambda _text: None)
        deadline = time.monotonic() + timeout
        while True:
            glance = self.glance()
            agreed = glance.agreement()
            if agreed.converged:
                return glance
            if glance.unserved and not glance.views:
                say("waiting for convergence: the nodes serve no /health/cluster yet")
            else:
                say(
                    f"waiting for convergence: {len(agreed.agreeing)} of"
                    f" {len(agreed.expected)} nodes see all {len(agreed.expected)} alive"
                )
            if time.monotonic() > deadline:
                raise NotConverged(
                    f"views did not converge within {timeout:.0f}s: {glance.disagreement()}"
                )
            time.sleep(poll)
