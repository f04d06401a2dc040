"""A whole node: real hypercorn sockets in-process, and a real process driven by signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from adapters.node import NodeHandle, run_node
from adapters.system_stats import FixedStats
from mesh.config import NodeConfig
from mesh.model import CheckResult, HealthCheck
from tests.helpers import http_get, wait_until

pytestmark = pytest.mark.network

# Loop lag only fails this far behind, so a busy CI machine does not turn a node degraded.
FAST = NodeConfig(
    health_port=0, p2p_port=0, drain_seconds=0.0, shutdown_timeout=10.0, loop_lag_threshold=5.0
)


async def test_serves_endpoints_on_a_real_socket_and_stops() -> None:
    async with trio.open_nursery() as nursery:
        # Fixed resource readings: whether this machine's CPU is busy is not under test here.
        handle: NodeHandle = await nursery.start(partial(run_node, FAST, stats=FixedStats()))
        assert handle.http_port > 0
        await wait_until(
            lambda: handle.manager.decide()[0].serving, timeout=10, what="local checks to pass"
        )
        code, body = await http_get(handle.http_url + "/health")
        assert code == 200 and body["status"] == "healthy"
        assert set(body["checks"]) == {"disk-space", "memory", "resource-health", "event-loop-lag"}
        code, metrics = await http_get(handle.http_url + "/metrics")
        assert code == 200 and "chorus_system_health_score 1.0" in metrics
        handle.shutdown.request("test over")
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", handle.http_port)


async def test_critical_check_that_keeps_failing_shuts_the_node_down() -> None:
    runs = 0

    async def broken_db() -> CheckResult:
        nonlocal runs
        runs += 1
        return CheckResult.ok("connected") if runs == 1 else CheckResult.fail("refused")

    db = HealthCheck("database", broken_db, interval=0.05, timeout=1, critical=True)
    with trio.fail_after(20):
        report = await run_node(FAST, extra_checks=[db], stats=FixedStats())
    assert report.failure
    assert report.reason == "critical check 'database' failed 3 times in a row"
    assert runs == 4  # one pass, then three failures in a row


async def test_degraded_but_serving_when_a_non_critical_check_fails() -> None:
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(_run_with_full_disk)
        await wait_until(
            lambda: handle.manager.decide()[0].value == "degraded",
            timeout=10,
            what="degraded status",
        )
        code, body = await http_get(handle.http_url + "/health/ready")
        assert (code, body["ready"], body["status"]) == (200, True, "degraded")
        handle.shutdown.request("test over")


async def _run_with_full_disk(*, task_status: trio.TaskStatus[NodeHandle]) -> None:
    await run_node(FAST, stats=FixedStats(disk=0.99), task_status=task_status)


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
        found = re.search(r"serving health endpoints on (http://\S+)", log_path.read_text())
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
        (["--checks-disabled", "nope", "--health-port", "0"], "unknown check(s) nope"),
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
