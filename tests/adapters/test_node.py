"""A whole node: real hypercorn sockets in-process, and a real process driven by signals."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from importlib.metadata import version
from pathlib import Path

import pytest
import trio

from adapters.dht_memory import InMemoryDHTNetwork
from adapters.node import NodeHandle, run_node
from adapters.node_checks import share_probes
from adapters.node_settings import admission_for
from adapters.pubsub import InMemoryPubSubNetwork
from mesh.admission_formats import format_certificate, format_public_key
from mesh.certificate import authority_public_key, sign_certificate
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.flap import CheckState
from mesh.health_token import is_loopback_host
from mesh.manager import CheckManager
from mesh.model import CheckResult, HealthCheck, Status
from probes.dht_probe import DHTProbe, active_dht_check
from probes.enhanced import EnhancedHealthChecks
from probes.memory_link import InMemoryLinkNetwork
from probes.pubsub_probe import PubSubProbe, active_pubsub_check
from probes.system_stats import FixedStats
from tests.helpers import http_get, wait_until

pytestmark = pytest.mark.network

# Loop lag only fails this far behind, so a busy CI machine does not turn a node degraded.
# The devnet profile keeps network checks non-critical: these tests stop peers on purpose.
FAST = NodeConfig(
    health_port=0,
    p2p_port=0,
    drain_seconds=0.0,
    shutdown_timeout=10.0,
    loop_lag_threshold=5.0,
    profile="devnet",
    probe_interval=0.5,
)
LOCAL = {"disk-space", "memory", "resource-health", "event-loop-lag"}
NETWORK = {
    "pubsub-active-probe",
    "dht-active-probe",
    "pubsub-enhanced",
    "dht-enhanced",
    "p2p-connectivity",
    "replication-health",
    "task-manager",
    "election-health",
}


def config(tmp_path: Path, name: str, **changes: object) -> NodeConfig:
    return replace(FAST, data_dir=str(tmp_path / name), **changes)  # type: ignore[arg-type]


async def start(nursery: trio.Nursery, cfg: NodeConfig, **kwargs: object) -> NodeHandle:
    # Fixed resource readings: whether this machine's CPU is busy is not under test here.
    kwargs.setdefault("stats", FixedStats())
    handle: NodeHandle = await nursery.start(partial(run_node, cfg, **kwargs))
    return handle


def passing(handle: NodeHandle, name: str) -> bool:
    return handle.manager.flap_state(name).state is CheckState.PASSING


async def test_isolated_node_serves_endpoints_and_says_it_is_alone(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, config(tmp_path, "a"))
        assert handle.http_port > 0
        assert handle.node_id == handle.p2p.peer_id
        await wait_until(
            lambda: handle.manager.decide()[0] is not Status.STARTING,
            timeout=15,
            what="first results of every check",
        )
        code, body = await http_get(handle.http_url + "/health")
        assert set(body["checks"]) == LOCAL | NETWORK
        assert body["node_id"] == handle.p2p.peer_id
        # Alone, the probes cannot be answered: a loopback that passed here would be a lie.
        assert body["checks"]["pubsub-active-probe"]["healthy"] is False
        assert "no connected peers" in body["checks"]["pubsub-active-probe"]["message"]
        assert body["checks"]["dht-active-probe"]["healthy"] is False
        assert (code, body["status"]) == (200, "degraded")
        code, summary = await http_get(handle.http_url + "/health/summary")
        assert code == 200
        assert {"status", "overall_score", "component_scores", "key_metrics"} <= set(summary)
        assert summary["key_metrics"]["connected_peers"] == 0
        code, metrics = await http_get(handle.http_url + "/metrics")
        assert code == 200 and "chorus_p2p_connected_peers 0.0" in metrics
        # The standard process series, and what runs (the node's own registry has them).
        assert "\nprocess_resident_memory_bytes " in metrics
        assert f'chorus_build_info{{libp2p="{version("libp2p")}"' in metrics
        assert f'version="v{version("chorus-health")}"' in metrics
        assert sorted(_undocumented(metrics)) == []
        handle.shutdown.request("test over")
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", handle.http_port)


def _readme_section(title: str) -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    return readme.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_documents_election_health() -> None:
    from mesh.config_options import OPTIONS

    checks = _readme_section("## Built-in checks")
    assert "| `election-health` | no | 15 s / 5 s |" in checks
    for option in OPTIONS:
        if "election" in option.name:
            assert f"`{option.flag}" in checks and option.env in checks, option.name
    summary = next(
        line for line in _readme_section("## Endpoints").splitlines() if "/health/summary" in line
    )
    assert "`admin_uptime`" in summary and "`leadership_changes`" in summary


def _undocumented(exposition: str) -> set[str]:
    """Our series on /metrics that the README's metrics table does not list."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = {re.sub("_total$", "", name) for name in re.findall(r"^\| `(\w+)`", section, re.M)}
    exported = {
        re.sub("_total$", "", name)
        for name in re.findall(r"^# TYPE (chorus_\w+) ", exposition, re.M)
    }
    return exported - documented


@pytest.mark.parametrize(
    ("changes", "interval", "timeout"),
    [
        ({}, 15.0, 5.0),  # the reference's defaults
        ({"probe_interval": 2.0}, 2.0, 5.0),  # like every network check
        ({"probe_interval": 2.0, "election_probe_interval": 7.0}, 7.0, 5.0),
        ({"election_probe_interval": 30.0, "election_probe_timeout": 1.5}, 30.0, 1.5),
    ],
)
def test_election_timing_comes_from_the_settings(
    changes: dict[str, object], interval: float, timeout: float
) -> None:
    from adapters.node_settings import health_config_for

    health = health_config_for(replace(NodeConfig(), **changes))  # type: ignore[arg-type]
    assert (health.election_probe_interval, health.election_probe_timeout) == (interval, timeout)
    assert health.enable_election_probes
    assert not health_config_for(NodeConfig(enable_election_probes=False)).enable_election_probes


async def test_election_settings_reach_the_check(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        timed = await start(
            nursery,
            config(tmp_path, "a", election_probe_interval=7.0, election_probe_timeout=1.5),
        )
        check = timed.manager.get("election-health")
        # Not overridden by probe_interval (0.5 in FAST): the explicit setting wins.
        assert (check.interval, check.timeout) == (7.0, 1.5)
        off = await start(nursery, config(tmp_path, "b", enable_election_probes=False))
        assert "election-health" not in {c.name for c in off.manager.checks}
        for handle in (timed, off):
            handle.shutdown.request("test over")


async def test_two_nodes_probe_each_other_and_notice_a_peer_leaving(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        a = await start(nursery, config(tmp_path, "a"))
        b = await start(nursery, config(tmp_path, "b", bootstrap_peers=tuple(a.p2p.listen_addrs)))
        for node in (a, b):
            await wait_until(
                lambda n=node: n.manager.decide()[0] is Status.HEALTHY,
                timeout=30,
                what="both nodes healthy with each other's answers",
            )
        _, body = await http_get(a.http_url + "/health/checks")
        probe = body["checks"]["pubsub-active-probe"]
        assert probe["details"]["responders_answered"] == [b.p2p.peer_id]
        assert body["checks"]["dht-active-probe"]["details"]["outcome"] == "success"
        b_id, b_cfg = b.p2p.peer_id, b.config
        b.shutdown.request("leaving")
        await wait_until(
            lambda: not passing(a, "p2p-connectivity"),
            timeout=15,
            what="p2p-connectivity to fail on the remaining node",
        )
        assert a.manager.decide()[0] is Status.DEGRADED
        # The same data dir gives the same identity; a is healthy again once b is back.
        b = await start(nursery, b_cfg)
        assert b.p2p.peer_id == b_id
        await wait_until(
            lambda: passing(a, "p2p-connectivity"), timeout=15, what="p2p-connectivity to recover"
        )
        for node in (a, b):
            node.shutdown.request("test over")


async def cluster_states(handle: NodeHandle) -> dict[str, str]:
    code, body = await http_get(handle.http_url + "/health/cluster")
    assert code == 200, body
    return {peer["peer_id"]: peer["state"] for peer in body["peers"]}


async def test_cluster_view_converges_and_shows_a_graceful_leave(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        first = await start(nursery, config(tmp_path, "n0"))
        nodes = [first]
        # n2 drains long: its leave must not wait for the drain (issue 13).
        drains = {1: 0.0, 2: 6.0}
        for i in (1, 2):
            bootstrap = tuple(nodes[-1].p2p.listen_addrs)
            cfg = config(tmp_path, f"n{i}", bootstrap_peers=bootstrap, drain_seconds=drains[i])
            nodes.append(await start(nursery, cfg))
        ids = {node.p2p.peer_id for node in nodes}

        async def converged() -> bool:
            views = [await cluster_states(node) for node in nodes]
            return all(view == dict.fromkeys(ids, "alive") for view in views)

        await wait_until(converged, timeout=20, what="three views listing three alive peers")
        code, body = await http_get(nodes[0].http_url + "/health/cluster")
        assert body["counts"] == {"alive": 3, "suspect": 0, "dead": 0, "left": 0}
        assert body["node_id"] == nodes[0].p2p.peer_id
        one = nodes[1].p2p.peer_id
        code, peer = await http_get(f"{nodes[0].http_url}/health/cluster/{one}")
        assert code == 200 and peer["peer_id"] == one
        assert peer["http_addr"] == nodes[1].http_url
        missing, _ = await http_get(nodes[0].http_url + "/health/cluster/12D3KooWnobody")
        assert missing == 404

        nodes[2].shutdown.request("leaving")
        leaver = nodes[2].p2p.peer_id

        async def seen_left() -> bool:
            states = [(await cluster_states(n))[leaver] for n in nodes[:2]]
            return states == ["left", "left"]

        # Left everywhere while it still drains (6 s), answering 503 "stopping".
        await wait_until(seen_left, timeout=3, what="the leaving node shown as left")
        code, live = await http_get(nodes[2].http_url + "/health/live")
        assert code == 503 and live["status"] == "stopping"
        for node in nodes[:2]:
            node.shutdown.request("test over")


async def test_critical_check_that_keeps_failing_shuts_the_node_down(tmp_path: Path) -> None:
    runs = 0

    async def broken_db() -> CheckResult:
        nonlocal runs
        runs += 1
        return CheckResult.ok("connected") if runs == 1 else CheckResult.fail("refused")

    db = HealthCheck("database", broken_db, interval=0.05, timeout=1, critical=True)
    with trio.fail_after(20):
        report = await run_node(config(tmp_path, "a"), extra_checks=[db], stats=FixedStats())
    assert report.failure
    assert report.reason == "critical check 'database' failed 3 times in a row"
    assert runs >= 4  # one pass, then three failures in a row (more while shutting down)


async def test_full_disk_degrades_but_keeps_serving(tmp_path: Path) -> None:
    alone = config(tmp_path, "a", checks_disabled=tuple(NETWORK))
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, alone, stats=FixedStats(disk=0.99))
        await wait_until(
            lambda: handle.manager.decide()[0] is not Status.STARTING,
            timeout=10,
            what="first results",
        )
        assert handle.manager.flap_state("disk-space").state is CheckState.FAILING
        code, body = await http_get(handle.http_url + "/health/ready")
        assert (code, body["ready"], body["status"]) == (200, True, "degraded")
        handle.shutdown.request("test over")


@pytest.fixture
def node_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    log_path = tmp_path / "node.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adapters.cli",
                "--health-port",
                "0",
                "--p2p-port",
                "0",
                "--drain-seconds",
                "3",
                "--profile",
                "devnet",
                "--probe-interval",
                "1",
                "--data-dir",
                str(tmp_path),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        yield process, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_sigterm_turns_readiness_503_then_exits_cleanly(
    node_process: tuple[subprocess.Popen[str], Path],
) -> None:
    process, log_path = node_process
    url = ""

    def bound() -> bool:
        nonlocal url
        found = re.search(r"serving health endpoints on (http://[\d.]+:\d+)", log_path.read_text())
        url = found.group(1) if found else ""
        return bool(url)

    await wait_until(bound, timeout=30, what="the node to listen")

    async def ready() -> bool:
        return (await http_get(url + "/health/ready"))[0] == 200

    await wait_until(ready, timeout=20, what="readiness 200")
    os.kill(process.pid, signal.SIGTERM)

    async def not_ready() -> bool:
        code, body = await http_get(url + "/health/ready")
        return code == 503 and body["status"] == "stopping"

    await wait_until(not_ready, timeout=2, what="readiness 503 after SIGTERM")
    code, body = await http_get(url + "/health/live")
    assert (code, body["live"]) == (503, False)
    await wait_until(lambda: process.poll() is not None, timeout=15, what="the process to exit")
    assert process.returncode == 0, log_path.read_text()
    assert "shutdown finished" in log_path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--health-port", "99999"], "invalid flag --health-port: 99999 is not a TCP port"),
        (["--log-format", "xml"], "invalid flag --log-format: must be one of text, json"),
        (["--checks-disabled", "nope"], "unknown check(s) nope"),
        (
            ["--election-probe-timeout", "0"],
            "invalid flag --election-probe-timeout: must be a positive number",
        ),
        (["--enable-election-probes", "maybe"], "invalid flag --enable-election-probes"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_port_in_use_exits_2() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "adapters.cli", "--health-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_help_lists_options_with_environment_names() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0
    assert "--health-port PORT" in done.stdout and "[CHORUS_HEALTH_PORT]" in done.stdout


# --- admission ----------------------------------------------------------------------------

ME = "12D3KooWCWxcJ9S1BtZMSkEjY98kfN8W7CKNAiHvY2UPoz6qoq9F"
OTHER = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"


def _certified(tmp_path: Path, peer: str, expires_in: float) -> tuple[NodeConfig, float]:
    seed = os.urandom(32)
    now = 1_800_000_000.0
    cert = sign_certificate(seed, peer, int((now + expires_in) * 1000))
    path = tmp_path / "member.cert"
    path.write_text(format_certificate(cert))
    config = NodeConfig(
        authority_keys=(format_public_key(authority_public_key(seed)),),
        member_certificate=str(path),
    )
    return config, now


def test_a_node_with_its_certificate_is_admitted(tmp_path: Path) -> None:
    config, now = _certified(tmp_path, ME, 3600)
    policy, cert = admission_for(config, ME, now=now)
    assert policy.enabled and cert is not None and cert.peer_id == ME


@pytest.mark.parametrize(
    ("peer", "expires_in", "message"),
    [
        (OTHER, 3600, "admits " + OTHER),  # someone else's certificate
        (ME, -1, "not admitted by its own admission policy: expired"),
    ],
)
def test_a_node_its_policy_would_refuse_does_not_start(
    tmp_path: Path, peer: str, expires_in: float, message: str
) -> None:
    config, now = _certified(tmp_path, peer, expires_in)
    with pytest.raises(ConfigError, match=re.escape(message)):
        admission_for(config, ME, now=now)


def test_an_unreadable_certificate_is_a_config_error(tmp_path: Path) -> None:
    config = NodeConfig(member_certificate=str(tmp_path / "missing.cert"))
    with pytest.raises(ConfigError, match="cannot read it"):
        admission_for(config, ME)


def test_production_without_a_policy_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    policy, cert = admission_for(NodeConfig(), ME)
    assert not policy.enabled and cert is None
    warnings = [r for r in caplog.records if "no admission policy" in r.getMessage()]
    assert len(warnings) == 1
    caplog.clear()
    admission_for(NodeConfig(profile="devnet"), ME)
    assert not [r for r in caplog.records if "no admission policy" in r.getMessage()]


def _probes_and_manager() -> tuple[CheckManager, EnhancedHealthChecks, PubSubProbe, DHTProbe]:
    pubsub = InMemoryPubSubNetwork().attach("A")
    probe = PubSubProbe(pubsub, InMemoryLinkNetwork().attach("A"))
    dht_probe = DHTProbe(InMemoryDHTNetwork().attach("A"))
    enhanced = EnhancedHealthChecks(connected_peers=list, pubsub_probe=probe, dht_probe=dht_probe)
    manager = CheckManager(node_id="A", version="t")
    manager.register(active_pubsub_check(probe))
    manager.register(active_dht_check(dht_probe))
    enhanced.attach(manager)
    return manager, enhanced, probe, dht_probe


def test_active_checks_read_their_enhanced_twins_probes_while_fresh() -> None:
    manager, enhanced, probe, dht_probe = _probes_and_manager()
    share_probes(manager, enhanced)
    # An outcome the twin's interval plus its timeout old is still fresh: while the twin
    # runs on time, the active check never probes.
    assert probe.last.max_age == 30.0 + manager.get("pubsub-enhanced").timeout
    assert dht_probe.last.max_age == 60.0 + manager.get("dht-enhanced").timeout


def test_an_active_check_whose_twin_is_disabled_probes_for_itself() -> None:
    manager, enhanced, probe, dht_probe = _probes_and_manager()
    manager.get("pubsub-enhanced").enabled = False
    share_probes(manager, enhanced)
    assert probe.last.max_age == 0.0
    assert dht_probe.last.max_age > 0.0


def test_loopback_hosts_are_told_from_the_rest() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.9.9.9", "::1", "localhost"]))
    assert not any(map(is_loopback_host, ["0.0.0.0", "::", "10.0.0.5", "node-2.chorus"]))


async def test_endpoints_open_to_the_network_without_a_token_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with trio.open_nursery() as nursery:
        local = await start(nursery, config(tmp_path, "a"))
        assert not [r for r in caplog.records if "have no token" in r.getMessage()]
        wide = await start(nursery, config(tmp_path, "b", health_host="0.0.0.0"))
        (warning,) = [r for r in caplog.records if "have no token" in r.getMessage()]
        assert "0.0.0.0" in warning.getMessage()
        for handle in (local, wide):
            handle.shutdown.request("test over")
