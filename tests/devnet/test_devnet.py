"""The devnet: a real 3-node devnet started through the API behind ``python -m devnet up``,
broken with signals and torn down without a trace; and its pure parts (run-folder state,
agreement, table rendering, the bench's measurement and report) with plain values."""

from __future__ import annotations

import ast
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from devnet import bench_detection
from devnet.bench_detection import all_alive, all_see, one_run, poll_until
from devnet.bench_report import render_markdown
from devnet.bench_resources import _duration_ms
from devnet.cluster import (
    ClusterView,
    Devnet,
    NetnsNet,
    NodeRecord,
    Proc,
    RunDir,
    RunState,
    Snapshot,
    UsageError,
    agreement,
    default_probe_interval,
    proc_state,
)
from devnet.cluster_procs import _create_time
from devnet.commands import main
from devnet.commands_args import node_index
from devnet.commands_status import pretty_log_line
from devnet.serf import SerfCluster
from devnet.table import LiveDisplay, Progress, render, short_peer
from tests.devnet import bench_meta

# Bounds, not expectations: a 3-node devnet converges in a few seconds and sees a killed
# node dead in about 2 s; a loaded CI machine gets a generous margin.
CONVERGE_WITHIN = 90.0
DEAD_WITHIN = 30.0


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.network
@pytest.mark.slow
def test_devnet_converges_sees_a_killed_node_dead_and_leaves_no_process(tmp_path: Path) -> None:
    devnet = Devnet(tmp_path / "run")
    pids: list[int] = []
    try:
        state = devnet.up(3)
        pids = [rec.pid for rec in state.nodes.values() if rec.pid]
        assert len(pids) == 3 and len({rec.health_port for rec in state.nodes.values()}) == 3
        assert state.nodes[3].bootstrap == [state.nodes[2].multiaddr]  # the chain
        devnet.wait_ready(CONVERGE_WITHIN)
        devnet.wait_converged(CONVERGE_WITHIN)

        victim = state.nodes[2]
        devnet.kill(2)
        assert proc_state(devnet.state().nodes[2]) is Proc.EXITED
        deadline = time.monotonic() + DEAD_WITHIN
        while True:
            views = devnet.snapshot().views
            seen = {i: views[i].state_of(victim.peer_id) for i in (1, 3) if i in views}
            if seen == {1: "dead", 3: "dead"}:
                break
            assert time.monotonic() < deadline, f"node2 not seen dead by all: {seen}"
            time.sleep(0.2)

        # Restart keeps the identity and the ports; the others take it back.
        back = devnet.restart(2)
        pids.append(back.pid or 0)
        assert (back.peer_id, back.health_port, back.p2p_port) == (
            victim.peer_id,
            victim.health_port,
            victim.p2p_port,
        )
        devnet.wait_converged(CONVERGE_WITHIN)
    finally:
        devnet.down(timeout=30.0)
        devnet.close()
    assert all(gone(pid) for pid in pids), [p for p in pids if not gone(p)]
    final = RunDir(tmp_path / "run").load()
    assert all(proc_state(rec) is Proc.EXITED for rec in final.nodes.values())
    assert (tmp_path / "run" / "node2" / "identity.key").exists()
    assert "serving health endpoints" in Path(final.nodes[1].log).read_text()


@pytest.mark.network
@pytest.mark.slow
def test_the_up_command_converges_shows_the_table_and_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(
        ["up", "-n", "3", "--dir", str(run), "--duration", "2", "--timeout", "90", "--paced"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    # Paced: node3 started only once nodes 1 and 2 agreed (off by default at 3 nodes).
    assert err.index("paced: nodes 1-2 agree; starting node3") < err.index("node3 up in")
    assert "converged: all 3 nodes agree" in err
    assert "view of node1  converged" in out  # the live table, printed once off a terminal
    assert "all nodes stopped" in err
    state = RunDir(run).load()
    assert all(gone(rec.pid or 0) for rec in state.nodes.values())


# Under CI (CI=true) nothing skips: .ci/run installs serf (ops/install-system-deps.sh) and
# runs as root, so a skip there would hide a missing install step behind a green run.
IN_CI = os.environ.get("CI", "") == "true"


def netns_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"dnprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return made.returncode == 0


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(
    not IN_CI and not netns_usable(), reason="network namespaces need root and iproute2"
)
def test_a_partition_splits_the_views_and_heal_joins_them(tmp_path: Path) -> None:
    devnet = Devnet(tmp_path / "run")
    try:
        state = devnet.up(4, netns=True)
        assert state.nodes[1].host != "127.0.0.1" and state.nodes[1].netns
        devnet.wait_converged(CONVERGE_WITHIN)
        assert devnet.partition([[1, 2]]) == [[1, 2], [3, 4]]
        peers = {i: rec.peer_id for i, rec in state.nodes.items()}
        deadline = time.monotonic() + DEAD_WITHIN
        while True:
            views = devnet.snapshot().views
            split = all(
                i in views and views[i].state_of(peers[j]) == "dead"
                for i, j in ((1, 3), (2, 4), (3, 1), (4, 2))
            )
            if split:
                break
            assert time.monotonic() < deadline, "the sides did not see each other dead"
            time.sleep(0.5)
        devnet.heal()
        devnet.wait_converged(CONVERGE_WITHIN)
    finally:
        devnet.down(timeout=30.0)
        devnet.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert NetnsNet(devnet.run.root).ns(1) not in listed  # namespaces go with the devnet


# ---------------------------------------------------------------------- pure parts

PEERS = {1: "12D3KooWAAAAaaaa1111", 2: "12D3KooWBBBBbbbb2222", 3: "12D3KooWCCCCcccc3333"}


def run_state(tmp_path: Path, n: int = 3) -> RunState:
    nodes = {
        i: NodeRecord(
            index=i,
            data_dir=str(tmp_path / f"node{i}"),
            log=str(tmp_path / "logs" / f"node{i}.log"),
            health_port=8000 + i,
            p2p_port=9000 + i,
            peer_id=PEERS[i],
            pid=10_000 + i,
        )
        for i in range(1, n + 1)
    }
    return RunState(nodes=nodes, node_args=["--log-level", "debug"])


def view(me: int, states: dict[int, str], admin: int | None = 1) -> ClusterView:
    """A node's /health/cluster body, in the shape the node serves, parsed."""
    body: dict[str, Any] = {
        "node_id": PEERS[me],
        "status": "healthy",
        "score": 0.9,
        "admin": PEERS[admin] if admin else None,
        "counts": {"alive": 0, "suspect": 0, "dead": 0, "left": 0},
        "peers": [
            {
                "peer_id": PEERS[i],
                "self": i == me,
                "state": state,
                "status": "healthy",
                "score": 0.75,
                "components": {},
                "last_seen_age": None if i == me else 0.4,
                "incarnation": 0,
                "history": [],
            }
            for i, state in states.items()
        ],
        "timestamp": "2026-01-01T00:00:00Z",
    }
    return ClusterView.from_json(body)


def snapshot(views: dict[int, ClusterView], procs: dict[int, Proc] | None = None) -> Snapshot:
    procs = procs or {i: Proc.RUNNING for i in PEERS}
    return Snapshot(taken_at=0.0, procs=procs, views=views, health={}, errors={})


# ------------------------------------------------------------------------- run folder


def test_state_round_trips_through_the_run_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    state = run_state(tmp_path)
    with run.lock():
        run.save(state)
    loaded = run.load()
    assert loaded == state
    assert loaded.nodes[2].multiaddr == f"/ip4/127.0.0.1/tcp/9002/p2p/{PEERS[2]}"
    assert loaded.by_peer()[PEERS[3]] == 3
    with run.update() as changing:
        changing.nodes[1].pid = 42
    assert run.load().nodes[1].pid == 42


def test_partition_needs_a_netns_devnet_and_two_groups(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with run.lock():
        run.save(run_state(tmp_path))
    with Devnet(tmp_path) as devnet, pytest.raises(UsageError, match="up --netns"):
        devnet.partition([[1]])
    with run.update() as state:
        state.netns = True
    with Devnet(tmp_path) as devnet:
        with pytest.raises(UsageError, match="two non-empty groups"):
            devnet.partition([[1, 2, 3]])
        with pytest.raises(UsageError, match="one group only"):
            devnet.partition([[1, 2], [2, 3]])
        with pytest.raises(UsageError, match="no node 9"):
            devnet.partition([[9]])


def test_missing_folder_and_unknown_node_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no devnet in"):
        RunDir(tmp_path / "nothing").load()
    with pytest.raises(UsageError, match="no node 7 in this devnet \\(nodes 1-3\\)"):
        run_state(tmp_path).node(7)


def test_a_stepped_wall_clock_loses_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # psutil's create_time is boot time plus the start in ticks since boot, and the boot
    # time it reads moves with the wall clock. A step after a node was recorded made a
    # bench run lose node1 (never polled, never stopped; Session 23's trial 3).
    me = NodeRecord(1, "", "", pid=os.getpid(), create_time=_create_time(os.getpid()))
    boot = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: boot + 16.0)
    assert proc_state(me) is Proc.RUNNING


def test_process_state_guards_against_reused_pids(tmp_path: Path) -> None:
    started = _create_time(os.getpid())
    assert started is not None
    me = NodeRecord(1, "", "", pid=os.getpid(), create_time=started)
    assert proc_state(me) is Proc.RUNNING
    me.create_time = started - 100  # same pid, another process's start time
    assert proc_state(me) is Proc.EXITED
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(30)
    assert proc_state(NodeRecord(2, "", "", pid=done.pid)) is Proc.EXITED
    assert proc_state(NodeRecord(3, "", "")) is Proc.EXITED


# -------------------------------------------------------------------------- agreement


def test_agreement_needs_every_expected_node_to_see_exactly_them_and_one_admin() -> None:
    expected = {1: PEERS[1], 2: PEERS[2]}
    both = {1: view(1, {1: "alive", 2: "alive", 3: "dead"}), 2: view(2, {1: "alive", 2: "alive"})}
    assert agreement(both, expected).converged  # a dead third node is no obstacle

    lagging = {**both, 2: view(2, {1: "alive", 2: "alive", 3: "alive"})}
    assert agreement(lagging, expected).agreeing == (1,)
    assert not agreement(lagging, expected).converged

    split_brain = {**both, 2: view(2, {1: "alive", 2: "alive"}, admin=2)}
    assert not agreement(split_brain, expected).converged
    assert not agreement({1: both[1]}, expected).converged  # node 2 did not answer
    assert not agreement({}, {}).converged


# ---------------------------------------------------------------------------- table


def test_table_shows_the_observers_verdict_and_how_many_agree(tmp_path: Path) -> None:
    state = run_state(tmp_path)
    views = {
        1: view(1, {1: "alive", 2: "dead", 3: "alive"}),
        3: view(3, {1: "alive", 2: "suspect", 3: "alive"}),
    }
    procs = {1: Proc.RUNNING, 2: Proc.EXITED, 3: Proc.RUNNING}
    lines = render(snapshot(views, procs), state, observer=1)
    assert lines[0].startswith("devnet: 3 nodes (2 running, 0 frozen, 1 exited)  view of node1")
    assert "converged" in lines[0] and "admin node1" in lines[0]
    assert lines[1].split() == [
        "node", "peer", "process", "state", "status", "score", "last", "seen", "admin", "agree",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["node1"][1:] == [short_peer(PEERS[1]), "running", "alive", "healthy", "0.75",
                                 "self", "★", "2/2"]  # fmt: skip
    assert rows["node2"][2:4] == ["exited", "dead"] and rows["node2"][-1] == "1/2"
    assert rows["node3"][6:8] == ["0.4s", "ago"]


def test_table_without_cluster_views_falls_back_to_each_nodes_health(tmp_path: Path) -> None:
    state = run_state(tmp_path, n=2)
    snap = Snapshot(0.0, {1: Proc.RUNNING, 2: Proc.FROZEN}, {}, {1: {"status": "degraded"}}, {})
    lines = render(snap, state)
    assert "1 frozen" in lines[0]
    assert "degraded" in lines[2] and "frozen" in lines[3]
    assert lines[-1] == "the nodes serve no /health/cluster: showing their own /health"


def test_table_colours_states_only_when_asked(tmp_path: Path) -> None:
    snap = snapshot({1: view(1, {1: "alive", 2: "dead", 3: "alive"})})
    assert not any("\x1b[" in line for line in render(snap, run_state(tmp_path)))
    coloured = render(snap, run_state(tmp_path), color=True)
    assert any("\x1b[31mdead" in line for line in coloured)


def test_live_display_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    display = LiveDisplay(out, tty=True)
    display.show(["a", "b"])
    display.show(["c", "d", "e"])
    assert out.getvalue() == "\x1b[Ja\nb\n\x1b[2F\x1b[Jc\nd\ne\n"


def test_live_display_off_a_terminal_prints_only_changes() -> None:
    out = io.StringIO()
    display = LiveDisplay(out, tty=False)
    display.show(["t=1", "x"], changed_key=["x"])
    display.show(["t=2", "x"], changed_key=["x"])
    display.show(["t=3", "\x1b[31my\x1b[0m"], changed_key=["y"])
    assert out.getvalue() == "t=1\nx\n\nt=3\ny\n\n"


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress("1 of 3")
    progress("1 of 3")
    progress.line("node1 up")
    assert out.getvalue() == "\r\x1b[K1 of 3\r\x1b[Knode1 up\n"


# ------------------------------------------------------------------------- commands


@pytest.mark.parametrize(("raw", "index"), [("3", 3), ("node12", 12)])
def test_node_argument(raw: str, index: int) -> None:
    assert node_index(raw) == index


def test_bad_usage_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("devnet: error: no devnet in") and "\n" not in err
    with pytest.raises(SystemExit) as exited:
        main(["kill", "node-x", "--dir", str(tmp_path)])
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        main(["kill", "2", "--", "--log-level", "debug"])
    assert main(["down", "--dir", str(tmp_path / "none")]) == 0  # nothing to stop is fine


def test_json_log_lines_read_as_text() -> None:
    line = (
        '{"time": "2026-11-28T02:16:32.469Z", "level": "info", "logger": "adapters.node",'
        ' "message": "node X serving"}'
    )
    assert pretty_log_line(line) == "02:16:32.469 info    adapters.node: node X serving"
    assert pretty_log_line("Traceback (most recent call last):") == (
        "Traceback (most recent call last):"
    )


# --------------------------------------------------------------------------- bench


class FakeCluster:
    """A cluster whose members notice a signal after fixed delays, on a fake clock."""

    name = "fake"

    def __init__(self, clock: list[float], starting_until: float = 0.0) -> None:
        self.clock = clock
        self.n = 0
        self.events: dict[int, tuple[float, str]] = {}
        self.starting_until = starting_until
        self.frozen_at: float | None = None

    def start(self, n: int) -> float:
        self.n = n
        return self.clock[0]

    def views(self) -> dict[int, dict[int, str]]:
        self.clock[0] += 0.1
        now = self.clock[0]
        states = {m: (s if now >= t else "alive") for m, (t, s) in self.events.items() if now >= t}
        members = {m: states.get(m, "alive") for m in range(1, self.n + 1)}
        return {o: dict(members) for o in members if members[o] == "alive"}

    def starting(self, index: int) -> bool:
        return self.clock[0] < self.starting_until

    def signal(self, index: int, signum: int) -> None:
        if signum == 19:
            self.frozen_at = self.clock[0]
        delay, state = {9: (2.0, "dead"), 19: (3.0, "dead"), 15: (0.5, "left")}.get(
            signum, (0.0, "alive")
        )
        if state == "alive":
            self.events.pop(index, None)
        else:
            self.events[index] = (self.clock[0] + delay, state)

    def restart(self, index: int) -> float:
        self.events.pop(index, None)
        return self.clock[0]

    def processes(self) -> dict[int, Any]:
        return {}

    def gossip_ports(self) -> set[int]:
        return set()

    def close(self) -> None:
        pass


def test_one_run_measures_each_detection_from_the_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(bench_detection, "_clock", lambda: clock[0])
    monkeypatch.setattr(
        bench_detection, "_sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    result = one_run(FakeCluster(clock), 5, lambda _text: None)
    assert result["converge"] == pytest.approx(0.0)
    assert result["kill"] == pytest.approx(2.0, abs=0.21)
    assert result["freeze"] == pytest.approx(3.0, abs=0.21)
    assert result["leave"] == pytest.approx(0.5, abs=0.21)


def test_one_run_freezes_a_node_only_once_its_peers_no_longer_see_it_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(bench_detection, "_clock", lambda: clock[0])
    monkeypatch.setattr(
        bench_detection, "_sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    cluster = FakeCluster(clock, starting_until=110.0)
    result = one_run(cluster, 5, lambda _text: None)
    assert cluster.frozen_at is not None and cluster.frozen_at >= 110.0
    assert result["freeze"] == pytest.approx(3.0, abs=0.21)


def test_report_has_medians_and_the_ratio_to_serf(tmp_path: Path) -> None:
    runs = [
        {"target": "chorus", "n": 5, "run": r, "converge": c, "kill": 2.0, "freeze": 3.0,
         "leave": 0.4}
        for r, c in enumerate((1.0, 2.0, 9.0))
    ] + [
        {"target": "Serf", "n": 5, "run": r, "converge": 0.5, "kill": 6.0, "freeze": None,
         "leave": 0.2}
        for r in range(3)
    ]  # fmt: skip
    meta = bench_meta(duration_min=30, probe_interval=5.0, runs=3)
    text = render_markdown({"meta": meta, "runs": runs}, "BENCHMARKS.png")
    assert "| 5 | 2.00 s (1.00-9.00) | 0.50 s (0.50-0.50) | 4.00x |" in text
    assert "| 5 | 2.00 s (2.00-2.00) | 6.00 s (6.00-6.00) | 0.33x |" in text
    assert "| 5 | 3.00 s (3.00-3.00) | timed out, 3 failed | n/a |" in text
    assert "![convergence and detection times against cluster size](BENCHMARKS.png)" in text


def test_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from devnet.plot import plot

    summary = {"kill": {5: {"chorus": {"median": 2.0, "min": 1.5, "max": 2.5}}}}
    plot(summary, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(
    not IN_CI and shutil.which("serf") is None,
    reason="serf not found: apt-get install serf (ops/install-system-deps.sh)",
)
def test_serf_side_converges_and_sees_a_killed_agent_failed(tmp_path: Path) -> None:
    serf = SerfCluster(tmp_path / "serf")
    try:
        serf.start(3)
        live = {1, 2, 3}
        assert poll_until(serf, all_alive(live), timeout=30, interval=0.1)
        pid = serf.pids()[2]
        serf.signal(2, signal.SIGKILL)
        # Serf's LAN profile needs about 6 s; the bound leaves room for a busy machine.
        assert poll_until(serf, all_see({1, 3}, 2, {"dead"}), timeout=40, interval=0.2)
    finally:
        serf.close()
    assert gone(pid)


@pytest.mark.parametrize(
    ("text", "ms"), [("812.00us", 0.812), ("3.41ms", 3.41), ("1.20s", 1200.0), ("x", None)]
)
def test_wrk_durations(text: str, ms: float | None) -> None:
    assert _duration_ms(text) == (pytest.approx(ms) if ms is not None else None)


@pytest.mark.parametrize(("n", "interval"), [(1, 15.0), (10, 15.0), (11, 16.5), (20, 30.0)])
def test_default_probe_interval_grows_with_the_devnet(n: int, interval: float) -> None:
    assert default_probe_interval(n) == pytest.approx(interval)


def test_the_devnets_parts_do_not_import_devnet_cluster_back() -> None:
    # devnet.cluster is the public face over its parts (devnet/cluster_*.py) and re-exports
    # them: a part importing devnet.cluster would close an import circle.
    parts = sorted((Path(__file__).resolve().parents[2] / "devnet").glob("cluster_*.py"))
    assert len(parts) > 1
    for part in parts:
        imported: set[str] = set()
        for node in ast.walk(ast.parse(part.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        assert "devnet.cluster" not in imported, part.name


def test_heal_forgets_what_a_healed_node_learnt_of_us_while_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While cut, a node learns the root namespace's address at the side bridge's MAC; once
    # that bridge is gone its answers to our polls went nowhere for 25 s (2026-12-03).
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(NetnsNet, "_ip", staticmethod(lambda *args, check=True: calls.append(args)))
    net = NetnsNet(tmp_path / "run")
    net.heal([4, 6])
    for i in (4, 6):
        assert ("-n", net.ns(i), "neigh", "flush", "all") in calls
        moved = calls.index(("link", "set", net._veth(i), "master", net.bridge))
        assert moved < calls.index(("-n", net.ns(i), "neigh", "flush", "all"))
