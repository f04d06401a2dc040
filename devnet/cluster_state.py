"""The run folder and its state (re-exported by :mod:`devnet.cluster`): state.json's node
records, read and written under state.lock (the layout is in :mod:`devnet.cluster`'s
docstring), and the state the parts of a :class:`~devnet.cluster.Devnet` share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devnet.cluster_errors import DevnetError, UsageError
from devnet.cluster_settings import DEFAULT_PROBE_INTERVAL


@dataclass
class NodeRecord:
    index: int
    data_dir: str
    log: str
    health_port: int = 0
    p2p_port: int = 0
    peer_id: str = ""
    pid: int | None = None
    # The pid's start, seconds since boot (cluster_procs): a pid that started otherwise is
    # someone else's.
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


class _DevnetState:
    """What ``Devnet.__init__`` sets (see there), declared for the parts of
    :class:`~devnet.cluster.Devnet` that read it, the run's state, and the exit codes of the
    nodes this object started. A part that calls another part's methods derives from it:
    looking at the devnet (:mod:`devnet.cluster_waits`) and breaking it
    (:mod:`devnet.cluster_faults`) stand on this state alone, starting nodes
    (:mod:`devnet.cluster_startup`) on breaking them (a failed ``up`` takes everything down,
    a restart stops the node first)."""

    run: RunDir
    python: str
    die_with_parent: bool
    _children: dict[int, subprocess.Popen[bytes]]
    _pool: ThreadPoolExecutor

    def state(self) -> RunState:
        return self.run.load()

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
