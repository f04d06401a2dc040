"""Starting a devnet's nodes one after another (a part of :class:`~devnet.cluster.Devnet`):
``up``, ``restart``, the node's command line, its launch, and the wait for its endpoints in
its log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devnet.authority import LocalAuthority
from devnet.cluster_errors import DevnetError, UsageError
from devnet.cluster_faults import _Breaking
from devnet.cluster_netns import NetnsNet
from devnet.cluster_procs import Proc, _create_time, pdeathsig_preexec, proc_state, process_of
from devnet.cluster_settings import (
    KILL_TIMEOUT,
    REPO_ROOT,
    SERVING,
    START_TIMEOUT,
    STOP_TIMEOUT,
    TCP_PORT,
    default_probe_interval,
)
from devnet.cluster_state import NodeRecord, RunState


class _Startup(_Breaking):
    """``up``, ``restart`` and the launch of each node (built on breaking nodes, which
    stops them)."""

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


def _tail(text: str, lines: int = 3) -> str:
    last = [line.strip() for line in text.strip().splitlines()[-lines:]]
    return " | ".join(last) or "(empty)"
