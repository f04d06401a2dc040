"""Starting nodes: in-process (``run_node`` in the test's event loop) or as OS processes
(``adapters.cli``), with their configuration, a start-up budget and their links (a part of
:class:`~devnet.testing.MeshNetwork`).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from adapters.node import NodeHandle, run_node
from devnet.sim_errors import MachineTooSlow, NodeCrashed, SimulationError, machine_load
from devnet.sim_hooks import _Hooks
from devnet.sim_links import _Links
from devnet.sim_nodes import _LIVE_PROCESSES, SimNode, _flags, _StartedFlag
from devnet.sim_settings import PROCESS_START_BUDGET, REPO_ROOT, START_BUDGET
from devnet.sim_topology import Topology, _edges
from probes.system_stats import FixedStats

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's annotations for mypy.
    from trio_typing import TaskStatus


class _Startup(_Links, _Hooks):
    """Adding nodes to the network and starting each life of a node (built on the links it
    dials and the hooks it installs on each life)."""

    async def _start_monitor(self) -> None:
        """Start the event-loop monitor, once: with the first node there is load to watch."""
        if not self._started:
            self._started = True
            await self._nursery.start(self._lag.run)

    async def add_nodes(
        self,
        count: int,
        *,
        process: bool = False,
        topology: Topology | None = None,
        **config_changes: Any,
    ) -> list[SimNode]:
        """Start ``count`` nodes and link them by ``topology`` (default: the network's,
        "auto"). In-process nodes start together; process nodes one after another, each
        given its process peers as ``--bootstrap-peers``.

        Nodes added to a network that already has nodes are linked among themselves by
        the topology, and the first of them to the newest existing running node."""
        await self._start_monitor()
        first = len(self.nodes)
        earlier = [n for n in self.nodes if n.live]
        new = [self._new_node(process, config_changes) for _ in range(count)]
        edges = [(first + a, first + b) for a, b in _edges(topology or self.topology, count)]
        if earlier and new:
            edges.append((earlier[-1].index, new[0].index))
        self._add_links(edges)
        started = trio.current_time()
        with self._joining():
            if process:
                for node in new:
                    await self._start_node(node)
            else:
                async with trio.open_nursery() as nursery:
                    for node in new:
                        nursery.start_soon(self._start_node, node)
            await self._dial_all(edges)
        self._check_start_time(count, trio.current_time() - started)
        return new

    async def add_node(
        self,
        *,
        process: bool = False,
        links: Iterable[SimNode | str] | None = None,
        **config_changes: Any,
    ) -> SimNode:
        """Start one node and link it to ``links`` (default: the two newest running
        nodes). ``process=True`` runs it as a ``chorus-health`` OS process."""
        await self._start_monitor()
        if links is None:
            targets = [n for n in self.nodes if n.live][-2:]
        else:
            targets = [self.node(x) for x in links]
        node = self._new_node(process, config_changes)
        edges = [(t.index, node.index) for t in targets]
        self._add_links(edges)
        started = trio.current_time()
        with self._joining():
            await self._start_node(node)
            await self._dial_all(edges)
        self._check_start_time(1, trio.current_time() - started)
        return node

    def _new_node(self, process: bool, changes: Mapping[str, Any]) -> SimNode:
        index = len(self.nodes)
        name = f"n{index}"
        directory = self.directory / name
        directory.mkdir(parents=True, exist_ok=True)
        config = replace(self.config, data_dir=str(directory), **changes)
        if self.authority is not None:
            config = replace(
                config,
                authority_keys=(self.authority.public_key,),
                member_certificate=str(self.authority.admit(directory)),
            )
        if process:
            # The machine's CPU reading is meaningless on a machine running a simulation.
            disabled = tuple(dict.fromkeys((*config.checks_disabled, "resource-health")))
            # INFO to its log file: the toolkit reads its address from the listen line.
            config = replace(config, checks_disabled=disabled, log_level="info")
        node = SimNode(name=name, index=index, process=process, config=config, directory=directory)
        self.nodes.append(node)
        return node

    @contextlib.contextmanager
    def _joining(self) -> Iterator[None]:
        """Mark a burst of joining traffic (left out of the busy-loop verdict)."""
        began = trio.current_time()
        try:
            yield
        finally:
            self._startups.append((began, trio.current_time()))

    def _check_start_time(self, count: int, took: float) -> None:
        if took > 5.0 * count * self.scale and self._lag.max_lag > self.lag_limit:
            raise MachineTooSlow(
                f"machine too slow: starting {count} node(s) took {took:.1f} s "
                f"and the event loop lagged up to {self._lag.max_lag:.2f} s. {machine_load()}"
            )

    async def _start_node(self, node: SimNode) -> None:
        node.state = "starting"
        node._stopped = trio.Event()
        budget = (PROCESS_START_BUDGET if node.process else START_BUDGET) * self.scale
        try:
            with trio.fail_after(budget):
                if node.process:
                    await self._start_process(node)
                else:
                    handle: NodeHandle = await self._nursery.start(self._run_in_process, node)
                    node.handle = handle
                    node.peer_id = handle.node_id
                    node.p2p_addr = handle.p2p.listen_addrs[0]
                    node.http_url = handle.http_url
                    self._install_hooks(node)
                    if self._groups is not None:
                        # Peers may have redialled it before its gate was in place.
                        await self._cut_blocked_connections()
        except trio.TooSlowError:
            raise MachineTooSlow(
                f"machine too slow: node {node.name} did not start within {budget:.0f} s "
                f"({len(self.nodes)} nodes). {machine_load()}"
            ) from None
        node.lives += 1
        node.state = "running"
        # Later lives keep the ports, so the addresses peers hold stay right.
        node.config = replace(node.config, p2p_port=node.p2p_port, health_port=node.http_port)

    async def _run_in_process(self, node: SimNode, *, task_status: TaskStatus[NodeHandle]) -> None:
        status = _StartedFlag(task_status)
        try:
            with trio.CancelScope() as scope:
                node._scope = scope
                await run_node(node.config, stats=FixedStats(), task_status=status)
            if not scope.cancelled_caught and node.state == "running":
                node.state = "stopped"  # it shut itself down (a critical check)
        except Exception as exc:
            if not status.started_yet:
                raise  # a start-up error goes to whoever started it
            node.error = exc
            node.state = "crashed"
            raise NodeCrashed(f"node {node.name} ({node.peer_id}) crashed: {exc!r}") from exc
        finally:
            node._stopped.set()

    async def _start_process(self, node: SimNode) -> None:
        node._log = node.directory.with_suffix(".log")
        args = [sys.executable, "-m", "adapters.cli", *_flags(node.config)]
        bootstrap = [
            self.node(other).p2p_addr
            for link in self.links
            if node.name in link
            for other in link - {node.name}
            if self.node(other).process and self.node(other).live
        ]
        if bootstrap:
            args += ["--bootstrap-peers", ",".join(bootstrap)]
        start_at = node._log.stat().st_size if node._log.exists() else 0
        with node._log.open("ab") as log_file:
            node._proc = await trio.lowlevel.open_process(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        _LIVE_PROCESSES.add(node._proc)
        listening = re.compile(
            r"node (\S+) serving health endpoints on (http://[\d.]+:\d+), libp2p on (\S+)"
        )
        while True:
            text = node._log.read_bytes()[start_at:].decode("utf-8", "replace")
            found = listening.search(text)
            if found:
                node.peer_id, node.http_url, addr = found.groups()
                node.p2p_addr = addr.rstrip(",")
                return
            if node._proc.poll() is not None:
                raise SimulationError(
                    f"process node {node.name} exited with {node._proc.returncode} before "
                    f"listening; its log ({node._log}) ends with:\n{text[-2000:]}"
                )
            await trio.sleep(0.1)
