"""Simulate a chorus-health mesh inside one pytest-trio test: real nodes, injected faults.

What ``trio.testing`` is to trio, this module is to the health mesh. A :class:`MeshNetwork`
starts N real nodes (``adapters.node.run_node``: libp2p host, GossipSub, Kademlia, checks,
HTTP endpoints) in the test's own ``trio.run`` on 127.0.0.1, wires them into a sparse
topology, injects faults, and waits on conditions over every node's cluster view with
bounded time. A few nodes can be real OS processes (``adapters.cli``) where a fault needs
one: freezing and CPU starvation. :class:`~devnet.rogue.RoguePeer` is a hostile libp2p peer
under the test's control.

A complete test (pytest-trio, with the ``mesh_network`` fixture of
``devnet.pytest_plugin``)::

    import pytest
    from devnet.testing import DEAD

    @pytest.mark.network
    async def test_a_crashed_node_is_dead_everywhere(mesh_network):
        net = await mesh_network(5)                  # 5 nodes, converged
        victim = net.nodes[2]
        await net.crash(victim)                      # no goodbye: the host just goes
        await net.until(lambda mesh: mesh.all_see(victim, DEAD), what="victim dead")
        await net.until_converged()                  # the 4 others agree on each other

Without pytest: ``async with open_mesh(5, directory=path) as net: ...``.

Faults, and what each one models (see also the README section "Write your own simulation"):

============  ==========================================================================
crash         In-process: the node's task is cancelled, its host closes every socket;
              peers see the connections close, as after SIGKILL (the kernel closes a
              killed process's sockets the same way). No leave notice, no drain.
              Process node: SIGKILL.
leave         The node's graceful shutdown (``ShutdownManager.request``, or SIGTERM for a
              process node): readiness 503, drain, leave notice, stop.
restart       A new life with the same data directory (so the same key and peer id) and
              the same ports; it dials its topology links again, as bootstrap would.
freeze/thaw   Process nodes only: SIGSTOP / SIGCONT. Its sockets stay open and the kernel
              keeps accepting bytes, but it answers nothing: the real thing. One event
              loop cannot freeze one of its nodes and not the others.
starve        Process nodes only: SIGSTOP/SIGCONT bursts (``stopped`` seconds out of every
              ``period``), which is how CFS CPU throttling looks from inside a process:
              its event loop wakes late, it answers late, and its lag monitor says so.
partition     Per-node connection gates in the in-process nodes: connections across
              groups are closed, new ones are refused at dial time and at connection
              registration (``Swarm.dial_peer`` and ``Swarm.add_conn``, wrapped on the
              instance), whoever dials. Models a network split in which both sides see
              connection resets and cannot reconnect. Not modelled: one-way splits, or a
              silent blackhole that keeps sockets open (use freeze for that). A link
              between two process nodes cannot be gated (``UnsupportedFault``).
heal          Gates opened; by default the severed topology links are dialled again at once
              (an operator or a bootstrap list reconnecting). ``heal(redial=False)`` leaves
              reconnection to the nodes' own redial backoff (up to 30 s).
link faults   ``set_link(a, b, delay=, loss=)``: pubsub messages that ``a`` forwards to an
              in-process ``b`` are dropped with probability ``loss`` or held ``delay``
              seconds (``GuardedPubsub.push_msg`` wrapped on b's instance). Application
              gossip only: libp2p pings, DHT, view pulls and GossipSub control messages are
              untouched, so this is a lossy or slow gossip path, not a lossy cable.
============  ==========================================================================

Cost and scale. Every in-process node shares one event loop and so one core. The compact
configuration (:func:`sim_config`) keeps the cluster view, the local checks and the
connectivity check, and turns off the active probes (each one publishes to the whole
mesh); a test switches on what it puts under test. Links cost CPU too (py-libp2p signs
and checks a peer record in every pubsub RPC), so the default topology ("auto") gives each
node four links up to 10 nodes and two beyond: measured on a 2-core machine, 10 nodes use
35-45 % of a core, 20 nodes 40-55 % (more while the views are polled), while 14 nodes with
four links each saturate it.

In-process nodes get a 5 s ping timeout instead of the product's
(``P2PConfig.ping_timeout``; ``inprocess_ping_timeout=None`` keeps the product's): on
loopback a ping can only fail for want of scheduling, and one failed ping makes the pinger
suspect a healthy peer. Process nodes keep every product setting, so a starved process node
judges its peers with the real timings; a frozen process node is noticed by in-process
observers through their 5 s ping or its digests' silence, whichever comes first.

Too slow. While a network runs, a monitor samples how late the shared loop wakes a
sleeper and how busy the process is, and every ping between two live in-process nodes
that fails is recorded. A wait that fails after the loop lagged beyond ``lag_limit``
(default 0.5 s, the nodes' own starvation threshold), stayed busy beyond 90 % of a core
for 2 s outside node start-ups, or lost such a ping raises :class:`MachineTooSlow`, with
the numbers, the load average and every view, instead of a plain timeout; the pytest
plugin adds the same diagnosis to any failure of such a test.

Environment: ``CHORUS_MESH_TIME_SCALE`` multiplies every default wait bound (e.g. 2 on a
slow CI machine); ``CHORUS_MESH_LAG_LIMIT`` overrides the lag limit in seconds.

Layout: this module holds the configuration (:func:`sim_config`, :func:`time_scale` and
the constants), :class:`MeshNetwork`, :func:`open_mesh` and :func:`start_network`; the
read-only views (:class:`View`, :class:`PeerState`, :class:`MeshSnapshot`, the member
states) live in :mod:`devnet.sim_views`, the errors in :mod:`devnet.sim_errors`, and
:class:`SimNode`, :class:`LinkFault`, the event-loop monitor and the node and process
helpers in :mod:`devnet.sim_nodes`. Every name is still importable from here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio

from adapters.node import NodeHandle, run_node
from devnet.authority import LocalAuthority

# The views, errors and nodes live in devnet.sim_views, sim_errors and sim_nodes; every name
# this module defined before the split is imported back (``X as X``: explicit re-export).
from devnet.sim_errors import (
    MachineTooSlow,
    MeshTimeout,
    NodeCrashed,
    SimulationError,
    UnsupportedFault,
)
from devnet.sim_nodes import _LIVE_PROCESSES as _LIVE_PROCESSES
from devnet.sim_nodes import BUSY_WINDOW as BUSY_WINDOW
from devnet.sim_nodes import JOIN_SETTLE as JOIN_SETTLE
from devnet.sim_nodes import LAG_SAMPLE_PERIOD as LAG_SAMPLE_PERIOD
from devnet.sim_nodes import LinkFault, SimNode
from devnet.sim_nodes import NodeState as NodeState
from devnet.sim_nodes import _app_json as _app_json
from devnet.sim_nodes import _flags as _flags
from devnet.sim_nodes import _http_get as _http_get
from devnet.sim_nodes import _kill_leftover_processes as _kill_leftover_processes
from devnet.sim_nodes import _LagMonitor as _LagMonitor
from devnet.sim_nodes import _signal as _signal
from devnet.sim_nodes import _StartedFlag as _StartedFlag
from devnet.sim_views import _EMPTY as _EMPTY
from devnet.sim_views import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    MeshSnapshot,
    PeerState,
    View,
)
from devnet.sim_views import _natural as _natural
from devnet.sim_views import _view_from_json as _view_from_json
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from probes.system_stats import FixedStats

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's annotations for mypy.
    from trio_typing import TaskStatus

    from devnet.rogue import RoguePeer

__all__ = [
    "ALIVE",
    "DEAD",
    "INPROCESS_PING_TIMEOUT",
    "LEFT",
    "PROBE_CHECKS",
    "SUSPECT",
    "LinkFault",
    "MachineTooSlow",
    "MeshNetwork",
    "MeshSnapshot",
    "MeshTimeout",
    "NodeCrashed",
    "PeerState",
    "SimNode",
    "SimulationError",
    "UnsupportedFault",
    "View",
    "open_mesh",
    "sim_config",
    "time_scale",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


# The active network probes: each one publishes on a topic every node reads (or puts a DHT
# record on up to 20 peers), so with N nodes a probe round costs every node N deliveries.
# Off in the compact configuration; a scenario that tests them switches them on.
PROBE_CHECKS: tuple[str, ...] = (
    "pubsub-active-probe",
    "dht-active-probe",
    "pubsub-enhanced",
    "dht-enhanced",
    "replication-health",
    "task-manager",
)

# Seconds a wait may take by default, before time_scale(): generous, because the
# success path returns as soon as the condition holds and a shared 2-core machine is slow.
DEFAULT_WAIT = 30.0
DEFAULT_WAIT_PER_NODE = 1.5
# In-process nodes start in a few hundred milliseconds on an idle machine; a process node
# needs its Python start-up and imports too (1-3 s idle, much more when the machine is busy).
START_BUDGET = 30.0
PROCESS_START_BUDGET = 60.0
# The shared event loop's lag at which a scenario's timing no longer means anything: the
# nodes' own loop-lag threshold (NodeConfig.loop_lag_threshold), beyond which every
# in-process node calls itself starved.
DEFAULT_LAG_LIMIT = 0.5
# A loop whose process used more than BUSY_LIMIT of a core over BUSY_WINDOW seconds is
# saturated: its work queues grow, and with them every latency (see _LagMonitor).
BUSY_LIMIT = 0.9
# libp2p ping timeout of in-process nodes (py-libp2p's own default; the product's is
# P2PConfig.ping_timeout). N nodes share one event loop: on a busy machine the few round
# trips of one ping can take seconds of scheduling, and a single failed ping suspects the
# peer, so a short timeout turns a slow machine into a storm of false suspicions. Process
# nodes keep the product's settings.
INPROCESS_PING_TIMEOUT = 5.0
# Seconds between two looks at the views while waiting: POLL, or POLL_PER_NODE per live
# node if longer (reading 20 views costs the shared loop about 14 ms).
POLL = 0.25
POLL_PER_NODE = 0.02

Topology = Literal["auto", "ring", "ring2", "chain", "star", "full"] | Sequence[tuple[int, int]]
# "auto" uses ring2 (four links a node) up to this many nodes and ring (two) beyond. Every
# link costs the shared event loop CPU (py-libp2p signs and checks a peer record in every
# pubsub RPC, sends IDONTWANTs and yamux window updates): measured on this 2-core machine,
# 10 nodes on ring2 use about 36 % of a core and 14 saturate it; 20 on ring about 40 %.
AUTO_RING2_MAX = 10


def time_scale() -> float:
    """``CHORUS_MESH_TIME_SCALE`` (default 1): multiplies every default wait bound."""
    raw = os.environ.get("CHORUS_MESH_TIME_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"CHORUS_MESH_TIME_SCALE={raw!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"CHORUS_MESH_TIME_SCALE={raw!r} must be positive")
    return value


def _lag_limit_from_env() -> float:
    raw = os.environ.get("CHORUS_MESH_LAG_LIMIT")
    if raw is None:
        return DEFAULT_LAG_LIMIT
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"CHORUS_MESH_LAG_LIMIT={raw!r} is not a number") from None


def sim_config(**changes: Any) -> NodeConfig:
    """The compact node configuration of a simulation; ``changes`` replace fields.

    Ports 0 (any free port), the devnet profile (cluster presets in
    ``mesh/cluster_config.py``: a 0.5 s gossip heartbeat stretched to keep the whole
    cluster at a few messages a second; suspicion from 2 s), network probes every 30 s
    and the active probes off (:data:`PROBE_CHECKS`), no drain on shutdown. The loop-lag
    threshold stays the product's 0.5 s: a starved simulation should look starved.
    Nodes do not meet the members they hear of (``meet_links=0``): the links are the
    topology's, so a test's sparse ring stays sparse.
    """
    base = NodeConfig(
        health_port=0,
        p2p_port=0,
        profile="devnet",
        probe_interval=30.0,
        drain_seconds=0.0,
        shutdown_timeout=10.0,
        checks_disabled=PROBE_CHECKS,
        log_level="warning",
        meet_links=0,
    )
    return replace(base, **changes)


# -------------------------------------------------------------------------- network


class MeshNetwork:
    """A simulated mesh. Build it with :func:`open_mesh` or the ``mesh_network`` fixture.

    ``nodes`` lists every node ever added, in order (``nodes[i].name == f"n{i}"``);
    faults take nodes or their names.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        directory: Path,
        *,
        config: NodeConfig | None = None,
        topology: Topology = "auto",
        lag_limit: float | None = None,
        seed: int = 0,
        inprocess_ping_timeout: float | None = INPROCESS_PING_TIMEOUT,
        admission: bool = False,
    ) -> None:
        self._nursery = nursery
        # With ``admission``, a cluster authority of the network's own certifies every node
        # it adds (devnet/authority.py); rogues get no certificate.
        self.authority = LocalAuthority(Path(directory)) if admission else None
        self.inprocess_ping_timeout = inprocess_ping_timeout
        self.directory = Path(directory)
        self.config = config or sim_config()
        self.topology = topology
        self.lag_limit = _lag_limit_from_env() if lag_limit is None else lag_limit
        self.scale = time_scale()
        self.rng = random.Random(seed)
        self.nodes: list[SimNode] = []
        self.links: set[frozenset[str]] = set()  # by node name; who dials is an accident
        self._groups: list[frozenset[str]] | None = None  # partition, by node name
        self._severed: set[frozenset[str]] = set()
        self._link_faults: dict[tuple[str, str], LinkFault] = {}  # (sender, receiver) ids
        self._lag = _LagMonitor()
        self._spurious_pings: list[tuple[float, str, str]] = []
        self._startups: list[tuple[float, float]] = []  # (begin, end), trio time
        self._started = False
        self._closed = False
        self._rogues: list[RoguePeer] = []
        self.dropped_by_link_faults = 0

    # -- lifecycle -------------------------------------------------------------------

    async def _start_monitor(self) -> None:
        if not self._started:
            self._started = True
            await self._nursery.start(self._lag.run)

    async def aclose(self) -> None:
        """Stop every node at once (no goodbyes) and every process node for good."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes:
            if node._proc is not None:
                _signal(node._proc, signal.SIGCONT)
                _signal(node._proc, signal.SIGKILL)
            if node._scope is not None:
                node._scope.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(15):
            for node in self.nodes:
                if node._proc is not None:
                    await node._proc.wait()
                elif node._scope is not None:
                    await node._stopped.wait()

    # -- adding nodes ------------------------------------------------------------------

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

    def _add_links(self, edges: Iterable[tuple[int, int]]) -> None:
        for a, b in edges:
            self.links.add(frozenset((self.nodes[a].name, self.nodes[b].name)))

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
                f"and the event loop lagged up to {self._lag.max_lag:.2f} s. {self._load()}"
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
                f"({len(self.nodes)} nodes). {self._load()}"
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

    def _install_hooks(self, node: SimNode) -> None:
        """The partition gate and the link-fault shaper, on this life's host."""
        assert node.handle is not None
        p2p = node.handle.p2p
        # Concrete Swarm attributes (not in INetwork), replaced on this instance only.
        swarm: Any = p2p.host.get_network()
        me = node.peer_id
        if self.inprocess_ping_timeout is not None:
            # Read by the node's LinkPinger at every ping (adapters/pinger.py).
            p2p.pinger.timeout = self.inprocess_ping_timeout
        blocked = partial(self._blocked, node.name)
        original_dial = swarm.dial_peer
        original_add = swarm.add_conn

        async def dial_peer(peer_id: Any) -> Any:
            if blocked(peer_id.to_base58()):
                from libp2p.network.exceptions import SwarmException

                # Refused before any socket: py-libp2p's negative cache is not involved.
                raise SwarmException(f"{node.name}: {peer_id} is across a partition")
            return await original_dial(peer_id)

        async def add_conn(muxed_conn: Any, direction: str = "unknown") -> Any:
            if blocked(muxed_conn.peer_id.to_base58()):
                from libp2p.network.exceptions import SwarmException

                with contextlib.suppress(Exception):
                    await muxed_conn.close()
                raise SwarmException(f"{node.name}: connection across a partition refused")
            return await original_add(muxed_conn, direction)

        swarm.dial_peer = dial_peer
        swarm.add_conn = add_conn

        pubsub: Any = p2p.guarded_pubsub
        original_push = pubsub.push_msg

        async def push_msg(forwarder: Any, msg: Any) -> None:
            fault = self._link_faults.get((forwarder.to_base58(), me))
            if fault is not None:
                if fault.loss and self.rng.random() < fault.loss:
                    self.dropped_by_link_faults += 1
                    return
                if fault.delay:
                    # push_msg runs as a task per message: holding one holds no other.
                    await trio.sleep(fault.delay)
            await original_push(forwarder, msg)

        pubsub.push_msg = push_msg

        # Ping failures between two in-process nodes. Loopback loses nothing, so such a
        # failure means the shared event loop did not run the ping's few round trips
        # within the ping timeout: the machine is too slow, and the node has just
        # suspected a healthy peer.
        pinger = p2p.pinger
        original_ping = pinger.ping

        async def ping(conn: Any) -> bool:
            answered = await original_ping(conn)
            if not answered:
                self._note_ping_failure(node, conn.muxed_conn.peer_id.to_base58())
            return answered

        pinger.ping = ping  # type: ignore[method-assign]

    def _note_ping_failure(self, pinger: SimNode, peer_id: str) -> None:
        other = self.names().get(peer_id)
        if other is None or not pinger.live:
            return
        target = self.node(other)
        if target.process or not target.live or self._blocked(pinger.name, peer_id):
            return  # a frozen or starved process, a stopping node: expected failures
        self._spurious_pings.append((trio.current_time(), pinger.name, target.name))
        logger.warning(
            "simulation: ping %s -> %s failed between in-process nodes (event-loop lag up "
            "to %.2f s)",
            pinger.name,
            target.name,
            self._lag.max_lag,
        )

    def spurious_ping_failures(self, since: float = -math.inf) -> list[tuple[float, str, str]]:
        """Pings that failed between two live in-process nodes since ``since`` (trio
        time): (time, pinger, target). Each one made py-libp2p abort a healthy link."""
        return [entry for entry in self._spurious_pings if entry[0] >= since]

    # -- topology ----------------------------------------------------------------------

    async def _dial_all(self, edges: Iterable[tuple[int, int]]) -> None:
        # One after another: a burst of simultaneous Noise handshakes is a CPU spike on
        # the shared loop, and dials on loopback take milliseconds.
        for a, b in edges:
            await self._dial(self.nodes[a], self.nodes[b])

    async def _dial(self, a: SimNode, b: SimNode) -> None:
        """Connect a and b from whichever side runs in this process (b first, like a
        joiner dialling its bootstrap peer). Two process nodes are linked by the later
        one's --bootstrap-peers (see _start_process), not here."""
        if not (a.live and b.live) or self._blocked(a.name, b.peer_id):
            return
        dialler, target = (b, a) if not b.process else (a, b)
        if dialler.process:
            return
        assert dialler.handle is not None
        from adapters.libp2p_host import P2PError

        for attempt in range(3):
            try:
                await dialler.handle.p2p.connect(target.p2p_addr)
                return
            except P2PError as exc:
                logger.info(
                    "dial %s -> %s failed (%d): %s", dialler.name, target.name, attempt, exc
                )
                await trio.sleep(0.5 * (attempt + 1))
        raise SimulationError(f"cannot link {dialler.name} to {target.name}")

    def _links_of(self, node: SimNode) -> list[SimNode]:
        return [
            self.node(o) for link in self.links if node.name in link for o in link - {node.name}
        ]

    # -- lookups -----------------------------------------------------------------------

    def node(self, who: SimNode | str) -> SimNode:
        """A node by SimNode, name ("n3") or peer id."""
        if isinstance(who, SimNode):
            return who
        for node in self.nodes:
            if who in (node.name, node.peer_id):
                return node
        raise KeyError(f"no node {who!r} in this simulation")

    @property
    def live(self) -> list[SimNode]:
        """Nodes running and not frozen: the ones the others should see alive."""
        return [n for n in self.nodes if n.live]

    @property
    def running(self) -> list[SimNode]:
        return [n for n in self.nodes if n.running]

    def names(self) -> dict[str, str]:
        """peer id -> node name, for every node ever started."""
        return {n.peer_id: n.name for n in self.nodes if n.peer_id}

    # -- faults: a node at a time ------------------------------------------------------

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
                f"{node.name} did not stop within {timeout * self.scale:.0f} s. {self._load()}"
            )

    # -- faults: the network -----------------------------------------------------------

    def _group_of(self, name: str) -> frozenset[str] | None:
        if self._groups is None:
            return None
        return next((g for g in self._groups if name in g), frozenset((name,)))

    def _blocked(self, name: str, peer_id: str) -> bool:
        """Whether node ``name`` may not talk to ``peer_id`` under the partition."""
        if self._groups is None:
            return False
        other = self.names().get(peer_id)
        if other is None:
            return False  # a stranger (a rogue peer): the partition is about our nodes
        return other not in self._group_of(name)  # type: ignore[operator]

    async def partition(self, *groups: Iterable[SimNode | str]) -> None:
        """Split the nodes into ``groups`` (nodes named nowhere form one more group).
        Connections across groups close at once and cannot be made again until heal()."""
        named = [frozenset(self.node(x).name for x in g) for g in groups]
        rest = frozenset(n.name for n in self.nodes) - frozenset().union(*named)
        if rest:
            named.append(rest)
        for a in self.nodes:
            for b in self.nodes:
                if (
                    a.process
                    and b.process
                    and a.index < b.index
                    and frozenset((a.name, b.name)) in self.links
                ):
                    if not any(a.name in g and b.name in g for g in named):
                        raise UnsupportedFault(
                            f"cannot cut the link {a.name}-{b.name}: both are process nodes"
                        )
        self._groups = named
        self._severed |= {link for link in self.links if not any(link <= g for g in named)}
        await self._cut_blocked_connections()

    async def heal(self, *, redial: bool = True) -> None:
        """End the partition; with ``redial``, dial every severed link again at once."""
        self._groups = None
        severed, self._severed = self._severed, set()
        for node in self.live:
            if node.handle is not None:
                # Belt and braces: a dial refused by a peer's gate marks that peer as
                # failed in py-libp2p's 60 s negative cache; the gate is gone now.
                cache = getattr(node.handle.p2p.host.get_network(), "_negative_peer_cache", None)
                if cache is not None:
                    cache.clear()
        if redial:
            edges = []
            for link in severed:
                a, b = (self.node(x) for x in sorted(link, key=_natural))
                edges.append((a.index, b.index))
            with self._joining():
                await self._dial_all(edges)

    async def _cut_blocked_connections(self) -> None:
        from libp2p.peer.id import ID

        for node in self.live:
            if node.handle is None:
                continue
            swarm = node.handle.p2p.host.get_network()
            for peer in node.handle.p2p.connected_peers():
                if self._blocked(node.name, peer):
                    with contextlib.suppress(Exception):
                        await swarm.close_peer(ID.from_base58(peer))

    def set_link(
        self,
        sender: SimNode | str,
        receiver: SimNode | str,
        *,
        delay: float = 0.0,
        loss: float = 0.0,
        both_ways: bool = True,
    ) -> None:
        """Delay or drop the pubsub messages ``sender`` forwards to ``receiver`` (and the
        other way round with ``both_ways``). The receiving side must be in-process.
        ``set_link(a, b)`` with no delay and no loss clears the fault."""
        if not (0.0 <= loss <= 1.0 and delay >= 0.0):
            raise ValueError(f"need 0 <= loss <= 1 and delay >= 0, got {loss}, {delay}")
        pairs = [(self.node(sender), self.node(receiver))]
        if both_ways:
            pairs.append((pairs[0][1], pairs[0][0]))
        for src, dst in pairs:
            if dst.process:
                raise UnsupportedFault(f"link faults need an in-process receiver, not {dst.name}")
            key = (src.peer_id, dst.peer_id)
            if delay or loss:
                self._link_faults[key] = LinkFault(delay, loss)
            else:
                self._link_faults.pop(key, None)

    # -- rogue peers -------------------------------------------------------------------

    @asynccontextmanager
    async def rogue(self, *, connect_to: Iterable[SimNode | str] = ()) -> AsyncIterator[RoguePeer]:
        """A hostile libp2p peer (``devnet.rogue.RoguePeer``) connected to ``connect_to``."""
        from devnet.rogue import open_rogue

        key = self.directory / f"rogue{len(self._rogues)}.key"
        async with open_rogue(key, names=self.names()) as rogue:
            self._rogues.append(rogue)
            for target in connect_to:
                await rogue.connect(self.node(target))
            yield rogue

    # -- reading the nodes -------------------------------------------------------------

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

    # -- waiting -----------------------------------------------------------------------

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
            f"to {busy:.0%} of a core (limit {BUSY_LIMIT:.0%}).{ping_text} {self._load()}"
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

    def _load(self) -> str:
        try:
            one, five, _ = os.getloadavg()
        except OSError:
            return ""
        return (
            f"Load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} core(s): "
            "use fewer nodes, a larger CHORUS_MESH_TIME_SCALE, or an idle machine."
        )


# ---------------------------------------------------------------------------- entry


@asynccontextmanager
async def open_mesh(
    count: int = 0,
    *,
    directory: Path | str,
    processes: int = 0,
    config: NodeConfig | None = None,
    topology: Topology = "auto",
    converge: bool = True,
    lag_limit: float | None = None,
    seed: int = 0,
    inprocess_ping_timeout: float | None = INPROCESS_PING_TIMEOUT,
    admission: bool = False,
) -> AsyncIterator[MeshNetwork]:
    """A network of ``count`` in-process nodes plus ``processes`` process nodes (the last
    ones), linked by ``topology``; with ``converge``, yielded once every view agrees."""
    async with trio.open_nursery() as nursery:
        net = MeshNetwork(
            nursery,
            Path(directory),
            config=config,
            topology=topology,
            lag_limit=lag_limit,
            seed=seed,
            inprocess_ping_timeout=inprocess_ping_timeout,
            admission=admission,
        )
        try:
            await start_network(net, count, processes=processes, converge=converge)
            yield net
        finally:
            with trio.CancelScope(shield=True):
                await net.aclose()
            nursery.cancel_scope.cancel()


async def start_network(
    net: MeshNetwork, count: int, *, processes: int = 0, converge: bool = True
) -> None:
    """Add ``count`` in-process and ``processes`` process nodes, as one topology."""
    if count:
        await net.add_nodes(count)
    for _ in range(processes):
        await net.add_node(process=True)
    if converge and (count or processes):
        await net.until_converged()


# -------------------------------------------------------------------------- helpers


def _edges(topology: Topology, n: int) -> list[tuple[int, int]]:
    """Links among nodes 0..n-1 as (earlier, later) index pairs."""
    if not isinstance(topology, str):
        return [(min(a, b), max(a, b)) for a, b in topology]
    if topology == "auto":
        topology = "ring2" if n <= AUTO_RING2_MAX else "ring"
    if topology == "full" or n <= 3:
        return [(a, b) for b in range(n) for a in range(b)]
    if topology == "chain":
        return [(i - 1, i) for i in range(1, n)]
    if topology == "star":
        return [(0, i) for i in range(1, n)]
    if topology in ("ring", "ring2"):
        # A circulant graph: "ring" links each node to the next (C_n(1): two links each;
        # one failure never splits it), "ring2" also to the one after (C_n(1, 2): four
        # links each, four disjoint paths between any two nodes, so any three nodes can
        # fail without splitting the rest). Either way a contiguous block of nodes stays
        # connected on its own, so a partition into blocks leaves each side whole.
        offsets = (1,) if topology == "ring" else (1, 2)
        edges = {(min(i, (i + d) % n), max(i, (i + d) % n)) for i in range(n) for d in offsets}
        return sorted(edges)
    raise ValueError(f"unknown topology {topology!r}")


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
