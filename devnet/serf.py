"""The Serf side of the benchmarks: N ``serf agent`` processes on 127.0.0.1.

Serf (Debian's ``serf`` package) runs with its default LAN profile, which is memberlist's
DefaultLANConfig: probe every 1 s, suspicion timeout 4 * log10(n) s (at least 4 s), gossip
every 200 ms. Agent i joins agent i-1, as devnet node i bootstraps to node i-1.

The membership is read over Serf's RPC protocol (msgpack over TCP, the one ``serf
members`` speaks): one persistent connection per agent, so polling twenty agents ten times
a second costs next to nothing, where spawning ``serf members`` would load the machine.

SIGTERM makes an agent leave gracefully only with ``leave_on_terminate`` (by default
SIGTERM just stops it and the others see it *failed*); the agents get it in their config
file so that the same signal means the same thing on both sides of the benchmark.

Given a ``NetnsNet``, each agent runs in its own network namespace instead (``ip netns
exec``), bound to the namespace's address on Serf's default ports, as a ``--netns`` devnet
node is: the loss soak (devnet/bench_loss.py) drops packets inside each namespace, which
on 127.0.0.1 would hit every agent alike and the poller too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

from devnet.cluster import KILL_TIMEOUT, DevnetError, NetnsNet, pdeathsig_preexec

__all__ = ["INSTALL_HINT", "SerfCluster", "SerfRPC", "serf_version"]

INSTALL_HINT = "serf is not installed: run `apt-get install -y serf` (Debian's package)"
START_TIMEOUT = 15.0
RPC_TIMEOUT = 1.0
# Serf's own default ports; each agent in a namespace of its own has them to itself.
NETNS_BIND_PORT = 7946
NETNS_RPC_PORT = 7373
# Serf member status -> the cluster view's word for it.
STATES = {"alive": "alive", "failed": "dead", "left": "left", "leaving": "left"}


def serf_version(binary: str = "serf") -> str:
    path = shutil.which(binary)
    if path is None:
        raise DevnetError(INSTALL_HINT)
    out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=10)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def _msgpack() -> Any:
    try:
        import umsgpack  # type: ignore[import-untyped]  # no py.typed, no stubs
    except ImportError:
        raise DevnetError(
            "the Serf RPC client needs u-msgpack-python: pip install -e '.[bench]'"
        ) from None
    return umsgpack


class SerfRPC:
    """A minimal client of Serf's RPC: handshake, then ``members``."""

    def __init__(self, port: int, timeout: float = RPC_TIMEOUT, host: str = "127.0.0.1") -> None:
        self._msgpack = _msgpack()
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._file = self._sock.makefile("rb")
        self._seq = 0
        self._call("handshake", {"Version": 1}, body=False)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()

    def _call(self, command: str, args: dict[str, Any] | None, *, body: bool) -> Any:
        pack = self._msgpack.packb
        request = pack({"Command": command, "Seq": self._seq})
        if args is not None:
            request += pack(args)
        self._seq += 1
        self._sock.sendall(request)
        try:
            header = self._msgpack.unpack(self._file)
            if header.get("Error"):
                raise DevnetError(f"serf rpc {command}: {header['Error']}")
            return self._msgpack.unpack(self._file) if body else None
        except self._msgpack.UnpackException as exc:
            # The agent closed the connection (killed) mid-reply.
            raise ConnectionError(f"serf rpc {command}: {type(exc).__name__}") from None

    def members(self) -> dict[str, str]:
        """Member name -> Serf status (alive, failed, leaving, left)."""
        reply = self._call("members", None, body=True)
        return {str(m["Name"]): str(m["Status"]) for m in reply.get("Members", [])}


def free_port() -> int:
    """A port free for both TCP and UDP (memberlist binds both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise DevnetError("no free TCP+UDP port on 127.0.0.1")


@dataclass
class SerfAgent:
    index: int
    bind_port: int
    rpc_port: int
    host: str = "127.0.0.1"
    netns: str | None = None  # the namespace it runs in, if any
    process: subprocess.Popen[bytes] | None = None
    rpc: SerfRPC | None = None

    @property
    def name(self) -> str:
        return f"serf{self.index}"


class SerfCluster:
    """N Serf agents under ``root`` (one config and log per agent)."""

    name = "Serf"

    def __init__(self, root: Path, binary: str = "serf", netns: NetnsNet | None = None) -> None:
        self.root = root
        self.netns = netns
        self._namespaces = 0  # how many namespaces start() created, for stop() to remove
        path = shutil.which(binary)
        if path is None:
            raise DevnetError(INSTALL_HINT)
        self.binary = path
        self.agents: dict[int, SerfAgent] = {}
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="serf-rpc")

    # ------------------------------------------------------------------- processes

    def start(self, n: int, progress: Callable[[str], None] | None = None) -> float:
        """Start n agents one after another; returns the monotonic time the last one
        answered its RPC (its "ready")."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "agent.json").write_text(
            json.dumps({"leave_on_terminate": True}), encoding="utf-8"
        )
        ready = 0.0
        try:
            if self.netns is not None:
                self.netns.create(n)
                self._namespaces = n
            for i in range(1, n + 1):
                self.agents[i] = self._agent(i)
                ready = self._launch(i)
                if progress:
                    progress(f"Serf: agent {i} of {n} up")
        except BaseException:
            self.stop()
            raise
        return ready

    def _agent(self, index: int) -> SerfAgent:
        if self.netns is None:
            return SerfAgent(index, free_port(), free_port())
        return SerfAgent(
            index,
            NETNS_BIND_PORT,
            NETNS_RPC_PORT,
            host=self.netns.addr(index),
            netns=self.netns.ns(index),
        )

    def _launch(self, index: int) -> float:
        agent = self.agents[index]
        peer = next(
            (
                a
                for i, a in sorted(self.agents.items(), key=lambda kv: (kv[0] >= index, -kv[0]))
                if i != index and a.process is not None and a.process.poll() is None
            ),
            None,
        )
        # `ip netns exec` execs serf in place: the pid we get is the agent's.
        inside = ["ip", "netns", "exec", agent.netns] if agent.netns else []
        command = [
            *inside,
            self.binary,
            "agent",
            f"-node={agent.name}",
            f"-bind={agent.host}:{agent.bind_port}",
            f"-rpc-addr={agent.host}:{agent.rpc_port}",
            f"-config-file={self.root / 'agent.json'}",
            "-log-level=info",
        ]
        if peer is not None:
            command.append(f"-join={peer.host}:{peer.bind_port}")
        with (self.root / f"{agent.name}.log").open("ab") as log:
            agent.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=pdeathsig_preexec(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if agent.process.poll() is not None:
                raise DevnetError(
                    f"{agent.name} exited with code {agent.process.returncode};"
                    f" see {self.root / (agent.name + '.log')}"
                )
            try:
                # Ready once its RPC answers, like a devnet node once its HTTP does; the
                # -join (after the RPC listener opens) counts towards convergence.
                agent.rpc = SerfRPC(agent.rpc_port, host=agent.host)
                agent.rpc.members()
                return time.monotonic()
            except (OSError, DevnetError):
                if agent.rpc is not None:
                    agent.rpc.close()
                agent.rpc = None
            if time.monotonic() > deadline:
                raise DevnetError(f"{agent.name} did not answer RPC within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)

    def restart(self, index: int) -> float:
        agent = self.agents[index]
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(KILL_TIMEOUT)
        if agent.rpc is not None:
            agent.rpc.close()
            agent.rpc = None
        return self._launch(index)

    def starting(self, index: int) -> bool:
        """Serf has no start-up status: an agent that answers is a member like any other."""
        return False

    def signal(self, index: int, signum: int) -> None:
        process = self.agents[index].process
        if process is None or process.poll() is not None:
            raise DevnetError(f"serf{index} is not running")
        process.send_signal(signum)

    def wait_exit(self, index: int, timeout: float) -> None:
        process = self.agents[index].process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)

    def pids(self) -> dict[int, int]:
        return {
            i: a.process.pid
            for i, a in self.agents.items()
            if a.process is not None and a.process.poll() is None
        }

    def processes(self) -> dict[int, psutil.Process]:
        found = {}
        for i, pid in self.pids().items():
            with contextlib.suppress(psutil.Error):
                found[i] = psutil.Process(pid)
        return found

    def gossip_ports(self) -> set[int]:
        return {a.bind_port for a in self.agents.values()}

    def stop(self) -> None:
        """SIGKILL every agent (a benchmark teardown: nothing to leave gracefully), then
        remove their namespaces if they had any."""
        for agent in self.agents.values():
            if agent.rpc is not None:
                agent.rpc.close()
                agent.rpc = None
            if agent.process is not None and agent.process.poll() is None:
                agent.process.send_signal(signal.SIGCONT)  # a frozen one too
                agent.process.kill()
        for agent in self.agents.values():
            if agent.process is not None:
                agent.process.wait(KILL_TIMEOUT)
        self.agents.clear()
        if self.netns is not None and self._namespaces:
            self.netns.destroy(self._namespaces)
            self._namespaces = 0

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------------- views

    def views(self, observers: set[int] | None = None) -> dict[int, dict[int, str]]:
        """Observer index -> member index -> alive / dead / left (Serf's failed is dead),
        from every agent answering its RPC within the timeout."""
        wanted = [
            i
            for i, a in self.agents.items()
            if (observers is None or i in observers)
            and a.process is not None
            and a.process.poll() is None
        ]
        futures = {i: self._pool.submit(self._members, i) for i in wanted}
        views: dict[int, dict[int, str]] = {}
        for i, future in futures.items():
            members = future.result()
            if members is not None:
                views[i] = {
                    int(name.removeprefix("serf")): STATES.get(status, status)
                    for name, status in members.items()
                    if name.startswith("serf")
                }
        return views

    def _members(self, index: int) -> dict[str, str] | None:
        agent = self.agents[index]
        try:
            if agent.rpc is None:
                # Dropped after a timeout (a frozen agent): try again, briefly.
                agent.rpc = SerfRPC(agent.rpc_port, timeout=RPC_TIMEOUT, host=agent.host)
            return agent.rpc.members()
        except (OSError, DevnetError, ValueError):
            if agent.rpc is not None:
                agent.rpc.close()
            agent.rpc = None
            return None
