"""``chorus-health members | checks | status`` against real nodes on 127.0.0.1, run as the
operator runs it (a process, its exit code and its stderr); and its pure formatting with
plain values."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trio

from adapters.members_cli import (
    EXIT_BAD_ANSWER,
    EXIT_OK,
    EXIT_TOKEN,
    EXIT_UNHEALTHY,
    EXIT_UNREACHABLE,
    UsageProblem,
    resolve_token,
)
from adapters.node import NodeHandle
from tests.adapters.test_node import config, start
from tests.helpers import PROJECT, NodeProcess, wait_until

TOKEN = "s3cret-token"


def chorus(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``chorus-health ARGS`` as a process, with CHORUS_HEALTH_TOKEN set to ``token``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    if token is not None:
        env["CHORUS_HEALTH_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
        env=env,
    )


async def chorus_async(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    # In a thread: the nodes under test run in this trio loop and must keep answering.
    return await trio.to_thread.run_sync(partial(chorus, *args, token=token))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("chorus-health: error: ")
    return done.stderr


async def cluster_states(node: NodeHandle) -> dict[str, str]:
    code, body = await http_get_token(node.http_url + "/health/cluster")
    return {p["peer_id"]: p["state"] for p in body["peers"]} if code == 200 else {}


async def http_get_token(url: str) -> tuple[int, dict[str, object]]:
    def fetch() -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())

    return await trio.to_thread.run_sync(fetch)


# --------------------------------------------------------------------------- real nodes


@pytest.mark.network
async def test_members_checks_and_status_of_a_two_node_cluster(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        a = await start(nursery, config(tmp_path, "a", health_token=TOKEN))
        b = await start(
            nursery,
            config(tmp_path, "b", health_token=TOKEN, bootstrap_peers=tuple(a.p2p.listen_addrs)),
        )
        ids = {a.node_id, b.node_id}

        async def converged() -> bool:
            views = [await cluster_states(n) for n in (a, b)]
            _, body = await http_get_token(a.http_url + "/health/cluster")
            # An admin once members report a status (they are "starting" until then).
            both = all(view == dict.fromkeys(ids, "alive") for view in views)
            return both and body["admin"] is not None

        await wait_until(converged, timeout=30, what="both nodes alive in both views, an admin")

        done = await chorus_async("members", "--node", a.http_url, token=TOKEN)
        assert done.returncode == EXIT_OK, done.stderr
        head, header, *rows = done.stdout.splitlines()
        assert head.startswith(f"view of {a.node_id}: cluster ")
        assert "2 alive, 0 suspect, 0 dead, 0 left" in head
        assert header.split() == [
            "PEER", "ADDRESS", "STATE", "STATUS", "SCORE", "LAST", "SEEN", "VERSION", "TAGS"
        ]  # fmt: skip
        by_peer = {row.split()[0]: row for row in rows}
        assert set(by_peer) == ids
        assert rows[0].split()[0] == a.node_id and "self" in rows[0].split()[-1]
        row_b = by_peer[b.node_id].split()
        assert row_b[1:3] == [b.http_url, "alive"]
        assert row_b[6] == "ago"  # a human age ("420ms ago"), never nanoseconds
        _, cluster = await http_get_token(a.http_url + "/health/cluster")
        admin_row = by_peer[str(cluster["admin"])].split()
        assert "admin" in admin_row[-1].split(",")

        done = await chorus_async("members", "--node", a.http_url, "--json", token=TOKEN)
        assert done.returncode == EXIT_OK, done.stderr
        body = json.loads(done.stdout)
        assert body["node_id"] == a.node_id
        assert {p["peer_id"] for p in body["peers"]} == ids

        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        done = await chorus_async(
            "checks", "--node", b.http_url.removeprefix("http://"), "--health-token-file",
            str(token_file),
        )  # fmt: skip
        assert done.returncode == EXIT_OK, done.stderr
        checks = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
        assert {"pubsub-active-probe", "dht-active-probe", "disk-space"} <= set(checks)
        assert " ago " in checks["disk-space"]

        done = await chorus_async("status", "--node", a.http_url, token=TOKEN)
        assert done.returncode == EXIT_OK, done.stdout + done.stderr
        assert f"node     {a.node_id}" in done.stdout
        assert "2 alive, 0 suspect, 0 dead, 0 left" in done.stdout

        for node in (a, b):
            node.shutdown.request("test over")


@pytest.mark.network
async def test_a_missing_or_wrong_token_exits_4_with_one_line(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        a = await start(nursery, config(tmp_path, "a", health_token=TOKEN))
        for command in ("members", "checks", "status"):
            done = await chorus_async(command, "--node", a.http_url)
            assert done.returncode == EXIT_TOKEN
            assert "bad or missing token" in one_error_line(done)
        done = await chorus_async("members", "--node", a.http_url, token="not-" + TOKEN)
        assert done.returncode == EXIT_TOKEN
        assert "bad or missing token (HTTP 401: token refused)" in one_error_line(done)
        a.shutdown.request("test over")


@pytest.mark.network
def test_an_unreachable_node_exits_3_with_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Closed again: nothing listens there now.
    for command in ("members", "checks", "status"):
        done = chorus(command, "--node", f"127.0.0.1:{port}")
        assert done.returncode == EXIT_UNREACHABLE
        line = one_error_line(done)
        assert f"http://127.0.0.1:{port}/health" in line and "cannot reach the node" in line


class _NotANode(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>some other service</html>")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.network
def test_another_service_on_the_port_exits_5() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _NotANode) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            done = chorus("members", "--node", f"127.0.0.1:{server.server_address[1]}")
        finally:
            server.shutdown()
    assert done.returncode == EXIT_BAD_ANSWER
    assert "not a CHORUS health node (HTTP 200, not JSON)" in one_error_line(done)


@pytest.fixture
def crashing_peer(tmp_path: Path) -> Iterator[NodeProcess]:
    peer = NodeProcess(
        tmp_path / "b",
        "--profile", "devnet", "--probe-interval", "0.5", "--health-token", TOKEN,
    )  # fmt: skip
    try:
        yield peer
    finally:
        peer.stop()


@pytest.mark.network
async def test_status_exits_1_when_half_the_cluster_is_dead(
    tmp_path: Path, crashing_peer: NodeProcess
) -> None:
    crashing_peer.start()
    await crashing_peer.wait_listening()
    async with trio.open_nursery() as nursery:
        cfg = config(tmp_path, "a", health_token=TOKEN, bootstrap_peers=(crashing_peer.p2p_addr,))
        a = await start(nursery, cfg)
        peer = crashing_peer.peer_id

        async def sees(state: str) -> bool:
            return (await cluster_states(a)).get(peer) == state

        await wait_until(partial(sees, "alive"), timeout=30, what="the peer alive in a's view")
        # a itself serving: the exit code must come from the cluster's verdict, not a's own.
        await wait_until(
            lambda: a.manager.decide()[0].serving, timeout=30, what="a healthy or degraded"
        )
        crashing_peer.stop()  # SIGKILL: a crash, no leave
        await wait_until(partial(sees, "dead"), timeout=30, what="the crashed peer dead")

        done = await chorus_async("status", "--node", a.http_url, token=TOKEN)
        assert done.returncode == EXIT_UNHEALTHY, done.stdout + done.stderr
        assert "cluster  unhealthy" in done.stdout and "1 dead" in done.stdout
        assert "status   healthy" in done.stdout or "status   degraded" in done.stdout
        done = await chorus_async("status", "--node", a.http_url, "--json", token=TOKEN)
        assert done.returncode == EXIT_UNHEALTHY
        body = json.loads(done.stdout)
        assert body["ok"] is False and body["cluster"]["status"] == "unhealthy"
        assert body["cluster"]["counts"]["dead"] == 1
        done = await chorus_async("members", "--node", a.http_url, token=TOKEN)
        assert done.returncode == EXIT_OK  # members reports; only status judges
        assert any(r.split()[:1] == [peer] and " dead " in r for r in done.stdout.splitlines())
        a.shutdown.request("test over")


def test_no_command_still_runs_a_node_and_node_flags_refuse_a_command() -> None:
    done = chorus("--health-port", "99999")  # the node's own config error, as before
    assert done.returncode == 2 and "invalid flag --health-port" in done.stderr
    done = chorus("--health-port", "8081", "members")
    assert done.returncode == 2 and "go only without a command" in done.stderr
    helped = chorus("--help")
    assert helped.returncode == 0
    for words in ("GossipSub", "DHT", "signed cluster view", "dashboard", "Prometheus"):
        assert words in helped.stdout
    for command in ("members", "checks", "status"):
        assert f"    {command} " in helped.stdout


# -------------------------------------------------------------------------- pure parts


def test_token_from_flags_then_variables_as_the_node_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(" from-file\n")
    env = {"CHORUS_HEALTH_TOKEN": "from-env"}
    assert resolve_token(None, None, {}) is None
    assert resolve_token(None, None, env) == "from-env"
    assert resolve_token(None, str(path), env) == "from-file"
    assert resolve_token("from-flag", None, env) == "from-flag"
    assert resolve_token(None, None, {"CHORUS_HEALTH_TOKEN_FILE": str(path)}) == "from-file"
    with pytest.raises(UsageProblem, match="give the token once"):
        resolve_token(None, None, {**env, "CHORUS_HEALTH_TOKEN_FILE": str(path)})
    with pytest.raises(UsageProblem, match="cannot read"):
        resolve_token(None, str(tmp_path / "missing"), {})


def test_the_config_default_port_is_the_clients_default() -> None:
    from adapters.client import DEFAULT_NODE_URL
    from mesh.config import NodeConfig

    defaults = NodeConfig()
    assert DEFAULT_NODE_URL == f"http://{defaults.health_host}:{defaults.health_port}"
