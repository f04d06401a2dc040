"""What the bench measures through: the :class:`Target` interface both sides implement, and
:class:`ChorusTarget`, our devnet behind it (Serf's side is ``devnet.serf.SerfCluster``).

Every part of the bench (detection runs, costs, the soaks, the partition runs) drives a
cluster only through this interface, so each side is started, polled and broken the same
way.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

# NOT_ALIVE and light_view live with the devnet's own waits, which poll the same way.
from devnet.cluster import (
    HTTP_TIMEOUT,
    NOT_ALIVE,
    Devnet,
    Proc,
    get_json,
    light_view,
    proc_state,
)

__all__ = ["NOT_ALIVE", "PROBE_INTERVAL", "ChorusTarget", "Target", "light_view"]

# The devnet's probe interval in the benchmark: None is what `make devnet` runs at each
# size (devnet.cluster.default_probe_interval).
PROBE_INTERVAL: float | None = None


class Target(Protocol):
    name: str

    def start(self, n: int) -> float: ...
    def views(self) -> dict[int, dict[int, str]]: ...
    def starting(self, index: int) -> bool: ...
    def signal(self, index: int, signum: int) -> None: ...
    def restart(self, index: int) -> float: ...
    def processes(self) -> dict[int, psutil.Process]: ...
    def gossip_ports(self) -> set[int]: ...
    def close(self) -> None: ...


class ChorusTarget:
    """Our devnet, through the same Devnet API as ``python -m devnet up``."""

    name = "chorus"

    def __init__(
        self,
        root: Path,
        probe_interval: float | None = PROBE_INTERVAL,
        *,
        admission: bool = True,
        profile: str = "production",
        netns: bool = False,
    ) -> None:
        self.devnet = Devnet(root, die_with_parent=True)
        self.probe_interval = probe_interval
        self.admission = admission
        self.profile = profile
        self.netns = netns  # each node in its own network namespace (the loss soak)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="bench-poll")

    def start(self, n: int) -> float:
        self.devnet.up(
            n,
            probe_interval=self.probe_interval,
            admission=self.admission,
            profile=self.profile,
            netns=self.netns,
        )
        return time.monotonic()

    def views(self) -> dict[int, dict[int, str]]:
        state = self.devnet.state()
        names = state.by_peer()
        asked = {
            i: self._pool.submit(get_json, rec.http_url + NOT_ALIVE, HTTP_TIMEOUT)
            for i, rec in state.nodes.items()
            if rec.health_port and proc_state(rec) is Proc.RUNNING
        }
        views: dict[int, dict[int, str]] = {}
        for i, future in asked.items():
            code, body = future.result()
            if code == 200 and isinstance(body, dict):
                views[i] = light_view(body, names)
        return views

    def starting(self, index: int) -> bool:
        """Whether a running peer of node ``index`` still holds a digest of it saying it
        is starting (its first checks running): peers give such a member a starved one's
        patience (``ClusterConfig.starting_health``)."""
        state = self.devnet.state()
        peer_id = state.node(index).peer_id
        asked = [
            self._pool.submit(get_json, f"{rec.http_url}/health/cluster/{peer_id}", HTTP_TIMEOUT)
            for i, rec in state.nodes.items()
            if i != index and rec.health_port and proc_state(rec) is Proc.RUNNING
        ]
        answers = [future.result() for future in asked]
        return any(
            code != 200 or not isinstance(body, dict) or body.get("status") == "starting"
            for code, body in answers
        )

    def signal(self, index: int, signum: int) -> None:
        rec = self.devnet.state().node(index)
        os.kill(rec.pid or 0, signum)

    def restart(self, index: int) -> float:
        self.devnet.restart(index)
        return time.monotonic()

    def processes(self) -> dict[int, psutil.Process]:
        found = {}
        for i, rec in self.devnet.state().nodes.items():
            if rec.pid and proc_state(rec) is Proc.RUNNING:
                found[i] = psutil.Process(rec.pid)
        return found

    def gossip_ports(self) -> set[int]:
        return {rec.p2p_port for rec in self.devnet.state().nodes.values()}

    def health_url(self, index: int = 1) -> str:
        return self.devnet.state().node(index).http_url + "/health"

    def close(self) -> None:
        try:
            self.devnet.down(timeout=20.0)
        finally:
            self.devnet.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
