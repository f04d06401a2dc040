"""Reading the nodes (a part of :class:`~devnet.testing.MeshNetwork`): one view, a
snapshot of every live node's view, checks and metrics; in-process nodes through their
app, process nodes over HTTP.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from devnet.sim_errors import SimulationError, UnsupportedFault
from devnet.sim_nodes import SimNode, _app_json, _http_get
from devnet.sim_state import _MeshState
from devnet.sim_views import MeshSnapshot, View, _natural, _view_from_json

# The toolkit logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.testing")


class _Reading(_MeshState):
    """Views, snapshots, checks and metrics of the nodes, now."""

    async def view(self, node: SimNode | str) -> View:
        """One node's cluster view now."""
        target = self.node(node)
        body = await self._get_json(target, "/health/cluster")
        return _view_from_json(target.name, body, self.names())

    async def snapshot(self) -> MeshSnapshot:
        """Every live node's view, read together (process nodes over HTTP, concurrently)."""
        for node in self.nodes:
            if node._proc is not None and node.running and node._proc.poll() is not None:
                logger.warning("%s exited with %s", node.name, node._proc.returncode)
                node.state = "stopped"  # it stopped by itself (a critical check, a crash)
        names = self.names()
        views: dict[str, View] = {}
        unreachable: list[str] = []
        observers = self.live

        async def read(node: SimNode) -> None:
            try:
                views[node.name] = await self.view(node)
            except (OSError, SimulationError, ValueError) as exc:
                logger.debug("view of %s unreadable: %r", node.name, exc)
                unreachable.append(node.name)

        async with trio.open_nursery() as nursery:
            for node in observers:
                if node.process:
                    nursery.start_soon(read, node)
                else:
                    await read(node)
        expected = {}
        for node in observers:
            group = self._group_of(node.name)
            expected[node.name] = frozenset(
                n.peer_id for n in observers if group is None or n.name in group
            )
        return MeshSnapshot(
            views,
            expected=expected,
            names=names,
            unreachable=sorted(unreachable, key=_natural),
            taken_at=trio.current_time(),
        )

    async def checks(self, node: SimNode | str) -> dict[str, Any]:
        """The node's ``/health/checks`` body: ``{"checks": {name: {...}}, ...}``."""
        return await self._get_json(self.node(node), "/health/checks")

    async def check(self, node: SimNode | str, name: str) -> dict[str, Any]:
        """One check's entry of ``/health/checks`` (``healthy``, ``message``, ``details``...)."""
        body = await self.checks(node)
        return dict(body["checks"][name])

    async def run_check(self, node: SimNode | str, name: str) -> Any:
        """Run an in-process node's check once now and return its CheckResult."""
        target = self.node(node)
        if target.handle is None:
            raise UnsupportedFault(f"run_check needs an in-process node, not {target.name}")
        return await target.handle.manager.get(name).checker()

    async def metric(self, node: SimNode | str, name: str, **labels: str) -> float:
        """A sample of the node's Prometheus metrics (0.0 when absent)."""
        target = self.node(node)
        if target.handle is not None and target.running:
            return target.handle.registry.get_sample_value(name, labels) or 0.0
        from prometheus_client.parser import text_string_to_metric_families

        text = await self._get_text(target, "/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    async def _get_json(self, node: SimNode, path: str) -> dict[str, Any]:
        if node.handle is not None and node.running and not node.process:
            return await _app_json(node.handle, path)
        body = json.loads(await self._get_text(node, path))
        if not isinstance(body, dict):
            raise SimulationError(f"{path} of {node.name} answered {body!r}")
        return body

    async def _get_text(self, node: SimNode, path: str) -> str:
        if not node.http_url:
            raise SimulationError(f"{node.name} has no HTTP address")
        token = node.config.health_token
        return await trio.to_thread.run_sync(_http_get, node.http_url + path, token)
