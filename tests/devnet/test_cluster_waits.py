"""Devnet.wait_converged against stub nodes: it polls the light query the bench uses
(``/health/cluster?state=suspect,dead,left`` and the counts), never the whole views, and
still calls the devnet converged only when every running node sees exactly the running
nodes alive."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devnet.cluster import Devnet, NodeRecord, NotConverged, RunDir, RunState

PEERS = {i: f"12D3KooWPeer{i}" for i in range(1, 5)}
ADMIN = PEERS[1]


class StubNode(ThreadingHTTPServer):
    """One node's /health/cluster over a view set by the test, filtered as a node filters
    it (mesh.cluster_page): counts and admin are always the whole view's."""

    def __init__(self, me: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.me = me
        self.view: dict[str, str] = {}  # peer id -> state
        self.asked: list[str] = []

    def cluster(self, query: str) -> dict[str, Any]:
        wanted = parse_qs(query).get("state")
        states = set(wanted[0].split(",")) if wanted else None
        counts = dict.fromkeys(("alive", "suspect", "dead", "left"), 0)
        for state in self.view.values():
            counts[state] += 1
        return {
            "node_id": PEERS[self.me],
            "status": "healthy",
            "score": 1.0,
            "admin": ADMIN,
            "counts": counts,
            "peers": [
                self.peer(peer)
                for peer, state in sorted(self.view.items())
                if states is None or state in states
            ],
        }

    def peer(self, peer: str) -> dict[str, Any]:
        return {"peer_id": peer, "self": peer == PEERS[self.me], "state": self.view[peer]}


class _Handler(BaseHTTPRequestHandler):
    server: StubNode

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        url = urlsplit(self.path)
        code, body = 404, {"error": "no such route"}
        if url.path == "/health/cluster":
            code, body = 200, self.server.cluster(url.query)
        elif url.path.startswith("/health/cluster/"):
            peer = url.path.rsplit("/", 1)[1]
            if peer in self.server.view:
                code, body = 200, self.server.peer(peer)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def nodes() -> Iterator[dict[int, StubNode]]:
    stubs = {i: StubNode(i) for i in (1, 2, 3)}
    threads = [
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in stubs.values()
    ]
    for thread in threads:
        thread.start()
    try:
        yield stubs
    finally:
        for stub in stubs.values():
            stub.shutdown()
            stub.server_close()
        for thread in threads:
            thread.join(5)


def devnet_of(tmp_path: Path, stubs: dict[int, StubNode], stopped: int | None = None) -> Devnet:
    """A run folder whose nodes 1-3 are "running" (this test process's pid) at the stubs;
    ``stopped``: one more node with a peer id that no longer runs."""
    nodes = {
        i: NodeRecord(
            index=i,
            data_dir=str(tmp_path / f"node{i}"),
            log=str(tmp_path / f"node{i}.log"),
            health_port=stub.server_address[1],
            peer_id=PEERS[i],
            pid=os.getpid(),
        )
        for i, stub in stubs.items()
    }
    if stopped is not None:
        nodes[stopped] = NodeRecord(stopped, "", "", peer_id=PEERS[stopped])
    run = RunDir(tmp_path / "run")
    with run.lock():
        run.save(RunState(nodes=nodes))
    return Devnet(run.root)


def see(stubs: dict[int, StubNode], states: dict[int, str]) -> None:
    for stub in stubs.values():
        stub.view = {PEERS[i]: state for i, state in states.items()}


def only_light_queries(stubs: dict[int, StubNode]) -> bool:
    asked = [path for stub in stubs.values() for path in stub.asked]
    views = [path for path in asked if urlsplit(path).path == "/health/cluster"]
    return bool(views) and all(path.endswith("?state=suspect,dead,left") for path in views)


def test_wait_converged_polls_the_light_query_and_converges_when_all_are_alive(
    tmp_path: Path, nodes: dict[int, StubNode]
) -> None:
    see(nodes, {1: "alive", 2: "alive", 3: "alive"})
    with devnet_of(tmp_path, nodes) as devnet:
        glance = devnet.wait_converged(10.0, poll=0.05)
    assert all(stub.asked for stub in nodes.values())
    assert only_light_queries(nodes), [stub.asked for stub in nodes.values()]
    assert glance.agreement().admins == {ADMIN}


@pytest.mark.parametrize(
    ("node3_sees", "why"),
    [
        ({1: "alive", 2: "alive", 3: "alive"}, None),  # control: only node2 is behind
        ({1: "alive", 2: "suspect", 3: "alive"}, "node3 counts 2 alive of 3 running"),
        ({1: "alive", 3: "alive"}, "node3 counts 2 alive of 3 running, lists -"),
    ],
    ids=["control", "suspect", "missing"],
)
def test_wait_converged_refuses_while_a_member_is_suspect_or_missing(
    tmp_path: Path, nodes: dict[int, StubNode], node3_sees: dict[int, str], why: str | None
) -> None:
    see(nodes, {1: "alive", 2: "alive", 3: "alive"})
    nodes[2].view[PEERS[1]] = "suspect"
    nodes[3].view = {PEERS[i]: state for i, state in node3_sees.items()}
    with devnet_of(tmp_path, nodes) as devnet, pytest.raises(NotConverged) as refused:
        devnet.wait_converged(0.3, poll=0.05)
    assert only_light_queries(nodes)
    assert "node2 counts 2 alive of 3 running, lists node1 suspect" in str(refused.value)
    assert (why or "node3 admin") in str(refused.value)


@pytest.mark.parametrize(
    ("views", "refusal"),
    [
        ({1: "alive", 2: "alive", 3: "alive", 4: "dead"}, None),  # node4 seen dead
        ({1: "alive", 2: "alive", 3: "alive"}, None),  # node4 forgotten
        ({1: "alive", 2: "alive", 3: "alive", 4: "alive"}, "node1 counts 4 alive of 3 running"),
        # The count alone says 3 alive, as it should; but node4 stands in for node3.
        ({1: "alive", 2: "alive", 4: "alive"}, "node1 may count node4 \\(not running\\) alive"),
    ],
    ids=["seen-dead", "forgotten", "still-alive", "stands-in"],
)
def test_a_stopped_member_must_not_be_alive_in_any_view(
    tmp_path: Path, nodes: dict[int, StubNode], views: dict[int, str], refusal: str | None
) -> None:
    see(nodes, views)
    with devnet_of(tmp_path, nodes, stopped=4) as devnet:
        if refusal is None:
            devnet.wait_converged(10.0, poll=0.05)
        else:
            with pytest.raises(NotConverged, match=refusal):
                devnet.wait_converged(0.3, poll=0.05)
    assert only_light_queries(nodes)
