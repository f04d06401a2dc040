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

Layout: this module is the public face: :class:`MeshNetwork`, :func:`open_mesh`,
:func:`start_network`, and every name a test imports. MeshNetwork is assembled from parts
of one concern each (:mod:`devnet.sim_state` lists them): starting nodes
(:mod:`devnet.sim_startup`), the topology (:mod:`devnet.sim_topology`) and its links
(:mod:`devnet.sim_links`), the hooks on each in-process host (:mod:`devnet.sim_hooks`), node
faults (:mod:`devnet.sim_faults`), partitions and link faults (:mod:`devnet.sim_partition`),
reading the nodes (:mod:`devnet.sim_reading`), waits and their failure reports
(:mod:`devnet.sim_waits`). The configuration (:func:`sim_config`, :func:`time_scale` and
the constants) lives in :mod:`devnet.sim_settings`, the read-only views (:class:`View`,
:class:`PeerState`, :class:`MeshSnapshot`, the member states) in :mod:`devnet.sim_views`,
the errors in :mod:`devnet.sim_errors`, and :class:`SimNode`, :class:`LinkFault`, the
event-loop monitor and the node and process helpers in :mod:`devnet.sim_nodes`. Every name
is still importable from here.
"""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

# The parts of MeshNetwork, its settings, views, errors and nodes live in the devnet.sim_*
# modules; every name this module defined before the splits is imported back (``X as X``:
# explicit re-export), so ``from devnet.testing import ...`` keeps working.
from devnet.authority import LocalAuthority
from devnet.sim_errors import (
    MachineTooSlow,
    MeshTimeout,
    NodeCrashed,
    SimulationError,
    UnsupportedFault,
)
from devnet.sim_faults import _close_listeners as _close_listeners
from devnet.sim_faults import _NodeFaults
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
from devnet.sim_partition import _NetworkFaults
from devnet.sim_settings import BUSY_LIMIT as BUSY_LIMIT
from devnet.sim_settings import DEFAULT_LAG_LIMIT as DEFAULT_LAG_LIMIT
from devnet.sim_settings import DEFAULT_WAIT as DEFAULT_WAIT
from devnet.sim_settings import DEFAULT_WAIT_PER_NODE as DEFAULT_WAIT_PER_NODE
from devnet.sim_settings import INPROCESS_PING_TIMEOUT, PROBE_CHECKS, sim_config, time_scale
from devnet.sim_settings import POLL as POLL
from devnet.sim_settings import POLL_PER_NODE as POLL_PER_NODE
from devnet.sim_settings import PROCESS_START_BUDGET as PROCESS_START_BUDGET
from devnet.sim_settings import REPO_ROOT as REPO_ROOT
from devnet.sim_settings import START_BUDGET as START_BUDGET
from devnet.sim_settings import _lag_limit_from_env as _lag_limit_from_env
from devnet.sim_state import _MeshState as _MeshState
from devnet.sim_topology import AUTO_RING2_MAX as AUTO_RING2_MAX
from devnet.sim_topology import Topology as Topology
from devnet.sim_topology import _edges as _edges
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
from devnet.sim_waits import _Waits
from mesh.config import NodeConfig

if TYPE_CHECKING:
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


# -------------------------------------------------------------------------- network


class MeshNetwork(_NodeFaults, _NetworkFaults, _Waits):
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
