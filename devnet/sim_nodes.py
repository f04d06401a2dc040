"""The nodes of a simulation (re-exported by :mod:`devnet.testing`).

:class:`SimNode` (one node, in-process or an OS process), :class:`LinkFault`, the monitor
of the shared event loop's lag and load, and the helpers that start, signal and read
nodes and their processes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio

from adapters.node import NodeHandle
from devnet.sim_errors import SimulationError
from mesh.config import NodeConfig
from mesh.config_options import OPTIONS

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's annotations for mypy.
    from trio_typing import TaskStatus

__all__ = [
    "LinkFault",
    "SimNode",
]

# How often _LagMonitor samples the shared event loop, and the wall time over which it
# measures how busy the process is (see BUSY_LIMIT and DEFAULT_LAG_LIMIT in devnet.testing).
LAG_SAMPLE_PERIOD = 0.1
BUSY_WINDOW = 2.0
# Nodes joining (start-up, dials, the first pulls and digests) keep the loop busy for a
# few seconds: that burst is not a verdict on the machine.
JOIN_SETTLE = 5.0


NodeState = Literal["starting", "running", "frozen", "crashed", "left", "stopped"]


@dataclass(eq=False)
class SimNode:
    """One node of a simulation. In-process (``process`` False) or an OS process."""

    name: str
    index: int
    process: bool
    config: NodeConfig
    directory: Path
    peer_id: str = ""
    p2p_addr: str = ""  # /ip4/127.0.0.1/tcp/<port>/p2p/<peer id>
    http_url: str = ""
    state: NodeState = "starting"
    lives: int = 0
    handle: NodeHandle | None = None  # the current life's, in-process only
    error: BaseException | None = None  # what ended an in-process life unasked
    starved: bool = False
    _scope: trio.CancelScope | None = field(default=None, repr=False)
    _stopped: trio.Event = field(default_factory=trio.Event, repr=False)
    _proc: trio.Process | None = field(default=None, repr=False)
    _log: Path | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        """Started and not stopped (a frozen node still runs)."""
        return self.state in ("running", "frozen")

    @property
    def live(self) -> bool:
        """Running and able to answer: what the others should see alive."""
        return self.state == "running"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def p2p_port(self) -> int:
        return int(self.p2p_addr.split("/tcp/")[1].split("/")[0]) if self.p2p_addr else 0

    @property
    def http_port(self) -> int:
        return int(self.http_url.rsplit(":", 1)[1]) if self.http_url else 0

    def __repr__(self) -> str:
        kind = "process" if self.process else "in-process"
        return f"<SimNode {self.name} {kind} {self.state} {self.peer_id[-8:]}>"


@dataclass(frozen=True, slots=True)
class LinkFault:
    """Gossip-level trouble on the directed link sender -> receiver (see module docs)."""

    delay: float = 0.0  # seconds each forwarded pubsub message is held
    loss: float = 0.0  # probability that one is dropped


class _LagMonitor:
    """How late the shared event loop wakes a sleeper, and how busy it is (the process's
    CPU time over the last ``BUSY_WINDOW`` seconds of wall time), sampled every 0.1 s.

    Lag alone misses a saturated loop: trio runs every ready task in one batch, so a
    sleeper is late by at most a batch, while a connection whose frames each need a few
    scheduler passes falls behind without bound. A loop busy nearly all the time is
    the surer sign (the nodes' pings then time out although lag stays well under 1 s).
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=200_000)
        self._cpu: deque[tuple[float, float]] = deque()
        self.max_lag = 0.0
        self.max_busy = 0.0

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        deadline = trio.current_time() + LAG_SAMPLE_PERIOD
        task_status.started()
        while True:
            await trio.sleep_until(deadline)
            woke = trio.current_time()
            lag = max(0.0, woke - deadline)
            busy = self._busy(woke, time.process_time())
            self._samples.append((woke, lag, busy))
            self.max_lag = max(self.max_lag, lag)
            self.max_busy = max(self.max_busy, busy)
            deadline = woke + LAG_SAMPLE_PERIOD

    def _busy(self, now: float, cpu: float) -> float:
        self._cpu.append((now, cpu))
        while now - self._cpu[0][0] > BUSY_WINDOW:
            self._cpu.popleft()
        first_at, first_cpu = self._cpu[0]
        if now - first_at < BUSY_WINDOW / 2:
            return 0.0  # too short a window to judge
        return (cpu - first_cpu) / (now - first_at)

    def max_since(self, since: float) -> float:
        return max((lag for at, lag, _ in reversed(self._samples) if at >= since), default=0.0)

    def busy_since(self, since: float, excluding: Iterable[tuple[float, float]] = ()) -> float:
        """Largest busy fraction since ``since``, leaving out samples whose window touches
        one of the ``excluding`` intervals (node start-ups: key generation, imports)."""
        spans = [(begin, end + BUSY_WINDOW + JOIN_SETTLE) for begin, end in excluding]
        return max(
            (
                busy
                for at, _, busy in reversed(self._samples)
                if at >= since and not any(begin <= at <= end for begin, end in spans)
            ),
            default=0.0,
        )


# -------------------------------------------------------------------------- helpers


class _StartedFlag:
    """A task status that remembers whether ``started()`` was called."""

    def __init__(self, inner: TaskStatus[NodeHandle]) -> None:
        self._inner = inner
        self.started_yet = False

    # Optional to match trio_typing's TaskStatus, whose started() takes no value when the
    # status is TaskStatus[None]; run_node always passes its handle.
    def started(self, value: NodeHandle | None = None) -> None:
        assert value is not None, "run_node reports its handle"
        self.started_yet = True
        self._inner.started(value)


def _flags(config: NodeConfig) -> list[str]:
    """Command-line flags for ``adapters.cli`` giving ``config`` (defaults left out)."""
    default = NodeConfig()
    flags = []
    for option in OPTIONS:
        value = getattr(config, option.name)
        if value == getattr(default, option.name) or value is None:
            continue
        if isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        flags += [option.flag, text]
    return flags


def _signal(proc: trio.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if proc.returncode is None:
            os.kill(proc.pid, signum)


# Process nodes still running when the interpreter exits (a test run interrupted before
# its teardown) are killed then. Not PR_SET_PDEATHSIG: trio starts processes from a worker
# thread, and the signal fires when that thread ends, not the test process.
_LIVE_PROCESSES: weakref.WeakSet[trio.Process] = weakref.WeakSet()


@atexit.register
def _kill_leftover_processes() -> None:
    for proc in list(_LIVE_PROCESSES):
        with contextlib.suppress(Exception):
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)


def _http_get(url: str, token: str | None) -> str:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        return str(error.read().decode("utf-8"))


async def _app_json(handle: NodeHandle, path: str) -> dict[str, Any]:
    gossip = getattr(handle, "gossip", None)
    if path == "/health/cluster" and gossip is not None:
        return dict(gossip.cluster_json())
    headers = {}
    if handle.config.health_token:
        headers["Authorization"] = f"Bearer {handle.config.health_token}"
    response = await handle.app.test_client().get(path, headers=headers)
    body = await response.get_json()
    if not isinstance(body, dict):
        raise SimulationError(f"{path} of {handle.node_id} answered {body!r}")
    return body
