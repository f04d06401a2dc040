"""A local devnet: N chorus-health nodes as separate OS processes on 127.0.0.1.

Everything about one run lives in one folder (default ``.devnet/run``), so that a second
terminal can act on a devnet that the first one started::

    state.json       node index -> pid, ports, peer id, data dir, log path; the extra node
                     flags; the pid of the ``up`` process that owns the run
    state.lock       flock'd around every read-modify-write of state.json
    node1/           node 1's --data-dir: identity.key, so a restart keeps its peer id
    logs/node1.log   node 1's stdout and stderr (JSON lines, --log-format json)

Node i bootstraps to node i-1, so nodes start one after another: a node is started once
the previous one has logged its listen address. Starting them all at once would be quicker
on paper, but on two cores twenty Python start-ups take longer than the bounded bootstrap
retries (about 3 s), and a node that misses its bootstrap peer stays alone for good.

Ports: the first start of a node uses port 0 for HTTP and libp2p, and the ports it bound
are read back from its "serving health endpoints" log line (never a race with another
program grabbing a port we picked). A restart reuses the same ports, so the addresses the
other nodes were given stay valid.

Processes: every node runs in its own session, so Ctrl-C in the terminal reaches only the
``up`` process, which then stops all nodes with SIGTERM (a graceful leave) and escalates to
SIGKILL after a bound. Nodes started by ``up`` also get PR_SET_PDEATHSIG=SIGTERM, so they
leave even if ``up`` itself is killed. A pid in state.json is only signalled while the
process's start time still matches the recorded one (pids get reused).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil

from adapters.client import (
    ClientError,
    ClusterView,
    NodeClient,
    NodeUnreachable,
    PeerView,
    fetch_json,
)
from devnet.authority import LocalAuthority

__all__ = [
    "DEFAULT_DIR",
    "Agreement",
    "ClusterView",
    "Devnet",
    "DevnetError",
    "NodeRecord",
    "NotConverged",
    "PeerView",
    "Proc",
    "RunDir",
    "RunState",
    "Snapshot",
    "UsageError",
    "agreement",
]

DEFAULT_DIR = Path(".devnet/run")
REPO_ROOT = Path(__file__).resolve().parents[1]

# Network probes every 15 s: a devnet shows probe results within seconds of starting (the
# first run is due 2 s after start), and the seven network checks stay a small part of a
# node's load. At 5 s they cost each node of a 10-node devnet ~9 % of a core, more than
# everything else together (2026-11-28), and twenty nodes saturated two cores.
DEFAULT_PROBE_INTERVAL = 15.0
# Beyond 10 nodes the default grows by this much per node. Each probe costs every other
# node work (a DHT put is a lookup plus a store at up to k = 20 peers), so at a fixed
# interval the machine's total probe load grows with n squared; spacing probes as n grows
# keeps it level. At 20 nodes on two cores, 15 s kept every node's pings failing and the
# devnet never converged; 30 s converged in 3.5 s at 6 % of a core per node (2026-11-28).
PROBE_SECONDS_PER_NODE = 1.5


def default_probe_interval(n: int) -> float:
    """The devnet's probe interval for ``n`` nodes when none is given."""
    return max(DEFAULT_PROBE_INTERVAL, PROBE_SECONDS_PER_NODE * n)


# Seconds a node may take from exec to logging its endpoints. One node takes about 1 s
# alone; twenty starting on two busy cores have been seen to take several.
START_TIMEOUT = 30.0
# A graceful stop must fit in the node's own shutdown_timeout (30 s) plus its watchdog
# (10 s); beyond that the node is broken and gets SIGKILL.
STOP_TIMEOUT = 45.0
KILL_TIMEOUT = 10.0
# Per-request timeout when asking nodes for their view. A frozen node accepts the
# connection (the kernel does) and never answers; this bounds how long a table waits.
HTTP_TIMEOUT = 1.5

# The node's INFO line (adapters/node.py) with its peer id, HTTP port and libp2p addresses.
SERVING = re.compile(
    r"node (?P<peer>\w+) serving health endpoints on http://(?P<host>[\d.]+):(?P<port>\d+),"
    r" libp2p on (?P<addrs>[^\"\n]+)"
)
TCP_PORT = re.compile(r"/tcp/(\d+)")

PR_SET_PDEATHSIG = 1
MAX_GROUPS = 10  # groups a partition may have (bridges dn<tag>b1..b9)


class DevnetError(Exception):
    """Something went wrong while running the devnet (exit code 1)."""


class UsageError(DevnetError):
    """The command cannot apply: no devnet there, no such node, ... (exit code 2)."""


class NotConverged(DevnetError):
    """The views did not agree within the time allowed."""


class Proc(StrEnum):
    """What the OS says about a node's process."""

    RUNNING = "running"
    FROZEN = "frozen"  # SIGSTOPped
    EXITED = "exited"  # gone, or a zombie waiting to be reaped


# ---------------------------------------------------------------------- run folder state


@dataclass
class NodeRecord:
    index: int
    data_dir: str
    log: str
    health_port: int = 0
    p2p_port: int = 0
    peer_id: str = ""
    pid: int | None = None
    # psutil's create_time of the pid: a pid whose start time differs is someone else's.
    create_time: float | None = None
    bootstrap: list[str] = field(default_factory=list)
    started_at: float | None = None  # wall clock, for display
    exit_code: int | None = None  # when known: only the process that started it can reap it
    host: str = "127.0.0.1"  # the node's own address in a --netns devnet
    netns: str | None = None  # its network namespace, in a --netns devnet

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.health_port}"

    @property
    def multiaddr(self) -> str:
        return f"/ip4/{self.host}/tcp/{self.p2p_port}/p2p/{self.peer_id}"


@dataclass
class RunState:
    nodes: dict[int, NodeRecord]
    node_args: list[str] = field(default_factory=list)
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    # The nodes' --profile: "devnet" (quick probes, no drain, for a laptop) or
    # "production", exactly as operators run it (the bench measures that one first).
    profile: str = "devnet"
    controller_pid: int | None = None
    controller_create_time: float | None = None
    created_at: float = field(default_factory=time.time)
    version: int = 1
    netns: bool = False  # every node in its own network namespace (see NetnsNet)
    # The run's own cluster authority admits its nodes (devnet/authority.py); off: an open
    # cluster that any peer may join, as with no policy in production.
    admission: bool = True
    partition: list[list[int]] | None = None  # the groups cut off from each other

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["nodes"] = {str(i): asdict(rec) for i, rec in sorted(self.nodes.items())}
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RunState:
        nodes = {int(i): NodeRecord(**rec) for i, rec in body.get("nodes", {}).items()}
        fields = {k: v for k, v in body.items() if k != "nodes"}
        return cls(nodes=nodes, **fields)

    def node(self, index: int) -> NodeRecord:
        if index not in self.nodes:
            known = f"nodes 1-{max(self.nodes)}" if self.nodes else "no nodes"
            raise UsageError(f"there is no node {index} in this devnet ({known})")
        return self.nodes[index]

    def by_peer(self) -> dict[str, int]:
        return {rec.peer_id: i for i, rec in self.nodes.items() if rec.peer_id}


class RunDir:
    """The folder of one devnet run; see the module docstring for the layout."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def node_dir(self, index: int) -> Path:
        return self.root / f"node{index}"

    def log_path(self, index: int) -> Path:
        return self.root / "logs" / f"node{index}.log"

    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> RunState:
        try:
            body = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"no devnet in {self.root} (start one with: python -m devnet up --dir {self.root})"
            ) from None
        except (OSError, ValueError) as exc:
            raise DevnetError(f"cannot read {self.state_path}: {exc}") from None
        return RunState.from_json(body)

    def save(self, state: RunState) -> None:
        # Write then rename: a reader in another terminal never sees half a file.
        tmp = self.state_path.with_name(f".state.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "state.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def update(self) -> Iterator[RunState]:
        """Load, let the caller change, save; serialised against other processes."""
        with self.lock():
            state = self.load()
            yield state
            self.save(state)


# ------------------------------------------------------------------------ process checks


def process_of(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid and start time, or None."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > 0.5:
            return None  # the pid was reused by another program
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
    except psutil.Error:
        return None
    return process


def proc_state(rec: NodeRecord) -> Proc:
    process = process_of(rec.pid, rec.create_time)
    if process is None:
        return Proc.EXITED
    try:
        status = process.status()
    except psutil.Error:
        return Proc.EXITED
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return Proc.FROZEN
    return Proc.RUNNING


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


_LIBC: Any = None


def pdeathsig_preexec() -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGTERM when its parent dies (Linux)."""
    global _LIBC
    if _LIBC is None:
        # Loaded here, before fork: the child should do as little as possible.
        _LIBC = ctypes.CDLL(None, use_errno=True)
    libc, parent = _LIBC, os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: do not outlive it
            os._exit(1)

    return preexec


# -------------------------------------------------------------------------- cluster views


@dataclass(frozen=True)
class Agreement:
    """How far the views of the expected nodes agree."""

    agreeing: tuple[int, ...]  # expected nodes whose alive set is exactly the expected set
    expected: tuple[int, ...]
    admins: frozenset[str | None]  # admins named by the agreeing nodes

    @property
    def converged(self) -> bool:
        return bool(self.expected) and self.agreeing == self.expected and len(self.admins) == 1


def agreement(views: Mapping[int, ClusterView], expected: Mapping[int, str]) -> Agreement:
    """Full agreement: every expected node (index -> peer id) answers, sees exactly the
    expected peers alive, and all of them name the same admin."""
    want = frozenset(expected.values())
    agreeing = tuple(i for i in sorted(expected) if i in views and views[i].alive() == want)
    return Agreement(
        agreeing=agreeing,
        expected=tuple(sorted(expected)),
        admins=frozenset(views[i].admin for i in agreeing),
    )


@dataclass
class Snapshot:
    """What every node said at one moment, plus what the OS says about its process."""

    taken_at: float
    procs: dict[int, Proc]
    views: dict[int, ClusterView]
    # /health bodies, asked only of nodes without /health/cluster (older nodes).
    health: dict[int, dict[str, Any]]
    errors: dict[int, str]

    def expected(self, state: RunState) -> dict[int, str]:
        """Nodes whose process runs: those every view should list as alive."""
        return {
            i: rec.peer_id
            for i, rec in state.nodes.items()
            if self.procs.get(i) is Proc.RUNNING and rec.peer_id
        }


def _ask_cluster(url: str, timeout: float) -> ClusterView | ClientError:
    try:
        return NodeClient(url, timeout=timeout).cluster()
    except ClientError as exc:
        return exc


def get_json(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """GET a JSON endpoint; (status, body), or (0, error text) when nothing answered."""
    try:
        return fetch_json(url, timeout=timeout)
    except NodeUnreachable as exc:
        return 0, exc.reason


# ----------------------------------------------------------------- network namespaces


class NetnsNet:
    """Each node in its own network namespace, all on one bridge, so that a partition can
    be cut where it would be in real life: on the wire, silently.

    Chosen over an admin switch in the nodes because it needs nothing from the node (the
    code under test stays the code that ships) and drops packets without telling anyone,
    as a broken switch would; a switch inside the node would have to fake that. It needs
    root and iproute2 (``ip``, ``tc``); ``up --netns`` fails with one line where they are
    missing, and the default devnet on 127.0.0.1 needs neither.

    Layout: bridge ``dn<tag>br`` with 10.<o>.77.254/24 in the root namespace, namespace
    ``dn<tag>-<i>`` with ``eth0`` = 10.<o>.77.<i>/24 on a veth to the bridge; the tag and
    the octet come from the run folder's path, so two devnets do not collide. A partition
    moves each group but the first onto a bridge of its own (``dn<tag>b<k>``): frames
    between groups are lost without an error, like behind a broken switch; the root
    namespace (the table, the commands) still reaches every node. Only iproute2 is used:
    tc's drop action needs a kernel module that minimal kernels lack.
    """

    def __init__(self, root: Path) -> None:
        digest = hashlib.sha1(str(root).encode()).hexdigest()
        self.tag = digest[:4]
        self.octet = 20 + int(digest[4:6], 16) % 200
        self.bridge = f"dn{self.tag}br"

    def ns(self, index: int) -> str:
        return f"dn{self.tag}-{index}"

    def addr(self, index: int) -> str:
        return f"10.{self.octet}.77.{index}"

    def _veth(self, index: int) -> str:
        return f"dn{self.tag}v{index}"

    @staticmethod
    def _ip(*args: str, check: bool = True) -> None:
        tool = "tc" if args and args[0] == "tc" else "ip"
        argv = list(args[1:]) if tool == "tc" else list(args)
        if shutil.which(tool) is None:
            raise DevnetError(f"{tool} is missing (apt-get install -y iproute2)")
        done = subprocess.run([tool, *argv], capture_output=True, text=True, timeout=10)
        if check and done.returncode != 0:
            raise DevnetError(f"{tool} {' '.join(argv)}: {done.stderr.strip()}")

    def create(self, n: int) -> None:
        if n > 250:
            raise UsageError("a --netns devnet holds at most 250 nodes")
        self.destroy(n)  # leftovers of a crashed run in this folder
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
            self._ip("addr", "add", f"10.{self.octet}.77.254/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            for i in range(1, n + 1):
                ns, veth = self.ns(i), self._veth(i)
                self._ip("netns", "add", ns)
                self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._ip("link", "set", veth, "master", self.bridge, "up")
                self._ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
                self._ip("-n", ns, "link", "set", "eth0", "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
        except DevnetError as exc:
            self.destroy(n)
            raise DevnetError(
                f"cannot create network namespaces ({exc}); they need root and iproute2,"
                " the default devnet on 127.0.0.1 needs neither"
            ) from None

    def destroy(self, n: int) -> None:
        for i in range(1, n + 1):
            # The veth first: deleting a namespace unmounts it at once, but the kernel
            # frees it (and its end of the veth) only once nothing refers to it. After
            # the loss soak three veths outlived their namespaces by over a minute, with
            # no process left inside (orphaned TCP connections still retransmitting
            # across the lost packets, presumably), and the next run in the same folder
            # failed with "File exists". Deleting our end removes both ends now.
            self._ip("link", "del", self._veth(i), check=False)
            self._ip("netns", "del", self.ns(i), check=False)
        for k in range(1, MAX_GROUPS):
            self._ip("link", "del", self._side_bridge(k), check=False)
        self._ip("link", "del", self.bridge, check=False)

    def exec_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(index)]

    def _side_bridge(self, k: int) -> str:
        return f"dn{self.tag}b{k}"

    def cut(self, groups: Sequence[Sequence[int]]) -> None:
        """Move every group but the first onto a bridge of its own: frames between groups
        go nowhere. The root namespace keeps a host route to each moved node through its
        new bridge, so the table and the commands still reach every node."""
        self.heal(sorted(i for group in groups for i in group))
        for k, group in enumerate(groups[1:], start=1):
            bridge = self._side_bridge(k)
            self._ip("link", "add", bridge, "type", "bridge")
            self._ip("link", "set", bridge, "up")
            for i in group:
                self._ip("link", "set", self._veth(i), "master", bridge)
                # Our source address stays the main bridge's: Linux answers ARP for any of
                # its addresses on any interface, so the moved node can still reply.
                self._ip(
                    "route", "add", f"{self.addr(i)}/32", "dev", bridge,
                    "src", f"10.{self.octet}.77.254",
                )  # fmt: skip

    def heal(self, indexes: Iterable[int]) -> None:
        for i in indexes:
            self._ip("route", "del", f"{self.addr(i)}/32", check=False)
            self._ip("link", "set", self._veth(i), "master", self.bridge, check=False)
        for k in range(1, MAX_GROUPS):
            self._ip("link", "del", self._side_bridge(k), check=False)


# --------------------------------------------------------------------------------- Devnet


class Devnet:
    """The devnet in one run folder: the API behind ``python -m devnet``.

    Every method reads state.json afresh, so two ``Devnet`` objects on the same folder (two
    terminals) see each other's changes.
    """

    def __init__(
        self,
        root: Path | str = DEFAULT_DIR,
        *,
        python: str = sys.executable,
        die_with_parent: bool = False,
    ) -> None:
        self.run = RunDir(root)
        self.python = python
        self.die_with_parent = die_with_parent
        # Nodes this object started: only their parent can reap them (and learn the exit
        # code); until then a killed child is a zombie, which proc_state counts as exited.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="devnet-http")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def state(self) -> RunState:
        return self.run.load()

    # ----------------------------------------------------------------------- start-up

    def up(
        self,
        n: int,
        *,
        node_args: Sequence[str] = (),
        probe_interval: float | None = None,
        progress: Callable[[str], None] | None = None,
        started: Callable[[NodeRecord, float], None] | None = None,
        start_timeout: float = START_TIMEOUT,
        owned: bool = True,
        netns: bool = False,
        admission: bool = True,
        profile: str = "devnet",
    ) -> RunState:
        """Start ``n`` nodes, each bootstrapping to the one before; returns when every node
        has logged its endpoints. On failure everything started is stopped again.
        ``owned``: record this process as the run's controller (``down`` signals it).
        ``netns``: each node in its own network namespace (see NetnsNet), for partitions."""
        if n < 1:
            raise UsageError(f"a devnet needs at least 1 node, got {n}")
        say = progress or (lambda _text: None)
        with self.run.lock():
            self._refuse_if_running()
            # Keys survive from an earlier run in this folder (same peer ids); logs do not.
            shutil.rmtree(self.run.root / "logs", ignore_errors=True)
            (self.run.root / "logs").mkdir(parents=True)
            state = RunState(
                nodes={},
                node_args=list(node_args),
                probe_interval=(
                    default_probe_interval(n) if probe_interval is None else probe_interval
                ),
                controller_pid=os.getpid() if owned else None,
                controller_create_time=_create_time(os.getpid()) if owned else None,
                netns=netns,
                admission=admission,
                profile=profile,
            )
            net = NetnsNet(self.run.root)
            for i in range(1, n + 1):
                state.nodes[i] = NodeRecord(
                    index=i, data_dir=str(self.run.node_dir(i)), log=str(self.run.log_path(i))
                )
                if netns:
                    state.nodes[i].host, state.nodes[i].netns = net.addr(i), net.ns(i)
            self.run.save(state)
        try:
            if netns:
                say(f"creating {n} network namespaces")
                net.create(n)
            for i in range(1, n + 1):
                began = time.monotonic()
                say(f"starting node{i} of {n}")
                bootstrap = [state.nodes[i - 1].multiaddr] if i > 1 else []
                state = self._launch(i, bootstrap=bootstrap, timeout=start_timeout)
                if started is not None:
                    started(state.nodes[i], time.monotonic() - began)
        except BaseException:
            self.down()
            raise
        return state

    def _refuse_if_running(self) -> None:
        if not self.run.exists():
            return
        old = self.run.load()
        live = [rec for rec in old.nodes.values() if proc_state(rec) is not Proc.EXITED]
        controller = process_of(old.controller_pid, old.controller_create_time)
        if live or (controller is not None and controller.pid != os.getpid()):
            pids = ", ".join(f"{rec.name} pid {rec.pid}" for rec in live) or "no nodes"
            raise UsageError(
                f"a devnet is already running in {self.run.root} ({pids}); "
                f"stop it with: python -m devnet down --dir {self.run.root}"
            )

    def _command(self, rec: NodeRecord, state: RunState) -> list[str]:
        # `ip netns exec` execs the node in place: the pid we get is the node's.
        inside = ["ip", "netns", "exec", rec.netns] if rec.netns else []
        command = [
            *inside,
            self.python,
            "-m",
            "adapters.cli",
            "--health-port",
            str(rec.health_port),
            "--p2p-port",
            str(rec.p2p_port),
            "--data-dir",
            rec.data_dir,
            "--profile",
            state.profile,
            "--log-format",
            "json",
        ]
        if state.profile == "devnet":
            command += [
                "--probe-interval",
                f"{state.probe_interval:g}",
                # Nothing like a Kubernetes Service routes to a devnet node, so there is
                # no point keeping a stopping node around for 2 s: Ctrl-C stays quick.
                "--drain-seconds",
                "0",
            ]
        if rec.host != "127.0.0.1":
            command += ["--health-host", rec.host, "--p2p-host", rec.host]
        if rec.bootstrap:
            command += ["--bootstrap-peers", ",".join(rec.bootstrap)]
        if state.admission:
            # The run's own cluster authority: only its nodes enter the views (issue 12).
            command += LocalAuthority(self.run.root).node_flags(Path(rec.data_dir))
        return command + list(state.node_args)  # the user's flags last: they win

    def _launch(self, index: int, *, bootstrap: list[str], timeout: float) -> RunState:
        """Start node ``index`` with its recorded ports (0 the first time) and wait for its
        "serving" line; records pid, ports and peer id."""
        with self.run.update() as state:
            rec = state.node(index)
            rec.bootstrap = bootstrap
            rec.exit_code = None
            command = self._command(rec, state)
            log_path = Path(rec.log)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            offset = log_path.stat().st_size if log_path.exists() else 0
            with log_path.open("ab") as log:
                child = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO_ROOT,
                    start_new_session=True,  # Ctrl-C in the terminal is for `up`, not nodes
                    preexec_fn=pdeathsig_preexec() if self.die_with_parent else None,
                )
            self._children[index] = child
            rec.pid, rec.create_time = child.pid, _create_time(child.pid)
            rec.started_at = time.time()
        found = self._await_serving(index, child, log_path, offset, timeout)
        with self.run.update() as state:
            rec = state.node(index)
            rec.peer_id = found.group("peer")
            rec.health_port = int(found.group("port"))
            first_addr = found.group("addrs").split(",")[0].strip()
            port = TCP_PORT.search(first_addr)
            if port is None:
                raise DevnetError(f"{rec.name} logged no TCP address: {first_addr}")
            rec.p2p_port = int(port.group(1))
        return state

    def _await_serving(
        self,
        index: int,
        child: subprocess.Popen[bytes],
        log_path: Path,
        offset: int,
        timeout: float,
    ) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            with log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace")
            found = SERVING.search(text)
            if found:
                return found
            code = child.poll()
            if code is not None:
                raise DevnetError(
                    f"node{index} exited with code {code} before serving; its log ends:"
                    f" {_tail(text)}"
                )
            if time.monotonic() > deadline:
                child.kill()
                child.wait(KILL_TIMEOUT)
                raise DevnetError(
                    f"node{index} did not serve within {timeout:.0f}s; its log ends: {_tail(text)}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------------ looking

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

    # ----------------------------------------------------------------------- breaking

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

    def restart(self, index: int, timeout: float = START_TIMEOUT) -> NodeRecord:
        """Stop the node if it runs, then start it again with the same identity (data dir)
        and ports, bootstrapping to a running node (the one before it if possible)."""
        state = self.run.load()
        rec = state.node(index)
        if proc_state(rec) is not Proc.EXITED:
            self._terminate([rec], STOP_TIMEOUT)
        others = [
            r
            for i, r in sorted(state.nodes.items(), key=lambda item: (item[0] >= index, -item[0]))
            if i != index and r.peer_id and proc_state(r) is Proc.RUNNING
        ]
        bootstrap = [others[0].multiaddr] if others else []
        return self._launch(index, bootstrap=bootstrap, timeout=timeout).node(index)

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

    def reap(self) -> None:
        """Collect exit codes of our children that have exited (no zombies left)."""
        done = {i: c.returncode for i, c in self._children.items() if c.poll() is not None}
        if not done:
            return
        with self.run.update() as state:
            for i, code in done.items():
                rec = state.nodes.get(i)
                if rec is not None and rec.pid == self._children[i].pid:
                    rec.exit_code = code
        for i in done:
            del self._children[i]

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


def _tail(text: str, lines: int = 3) -> str:
    last = [line.strip() for line in text.strip().splitlines()[-lines:]]
    return " | ".join(last) or "(empty)"


def _disagreement(snap: Snapshot, state: RunState) -> str:
    expected = snap.expected(state)
    want = frozenset(expected.values())
    names = state.by_peer()
    parts = []
    for i in sorted(expected):
        view = snap.views.get(i)
        if view is None:
            parts.append(f"node{i} {snap.errors.get(i, 'has no cluster view')}")
            continue
        missing = sorted(f"node{names.get(p, '?')}" for p in want - view.alive())
        extra = sorted(f"node{names.get(p, '?')}" for p in view.alive() - want)
        if missing or extra:
            parts.append(
                f"node{i} misses {','.join(missing) or '-'}, extra {','.join(extra) or '-'}"
            )
        else:
            parts.append(f"node{i} admin {view.admin}")
    return "; ".join(parts) or "no node runs"
