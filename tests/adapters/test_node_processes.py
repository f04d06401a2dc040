"""Nodes in separate OS processes: bootstrap, a frozen and a killed peer, restart with the
same identity. The network checks must notice each fault and recover when the peer returns."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import NodeProcess, http_get, wait_until

pytestmark = [pytest.mark.network, pytest.mark.slow]

# Probes every 3 s: each node runs two pubsub checks (active and enhanced) on the same
# probe, and a responder answers one origin at most once a second (burst 3). At 1 s the
# answerer starved one of the two checks for good, whichever lost the race after a thaw.
FAST = (
    "--profile",
    "devnet",
    "--probe-interval",
    "3",
    "--drain-seconds",
    "0",
    "--loop-lag-threshold",
    "5",
)


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()


async def check(node: NodeProcess, name: str) -> dict:  # type: ignore[type-arg]
    code, body = await http_get(node.url + "/health/checks")
    assert code == 200, body
    return body["checks"][name]  # type: ignore[no-any-return]


async def passing(node: NodeProcess, name: str) -> bool:
    return (await check(node, name)).get("state") == "passing"


async def failing(node: NodeProcess, name: str) -> bool:
    return (await check(node, name)).get("state") == "failing"


async def test_bootstrap_freeze_kill_and_restart(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    a = NodeProcess(tmp_path / "a", *FAST)
    processes.append(a)
    a.start()
    await a.wait_listening()
    b = NodeProcess(tmp_path / "b", *FAST, "--bootstrap-peers", a.p2p_addr)
    processes.append(b)
    b.start()
    await b.wait_listening()
    b_id = b.peer_id

    for name in ("p2p-connectivity", "pubsub-active-probe", "dht-active-probe"):
        await wait_until(lambda n=name: passing(a, n), timeout=60, what=f"{name} passing on a")
    answered = (await check(a, "pubsub-active-probe"))["details"]["responders_answered"]
    assert answered == [b_id]

    # Frozen: the TCP connection stays open; only pings and unanswered probes tell.
    b.signal(signal.SIGSTOP)
    for name in ("p2p-connectivity", "pubsub-active-probe"):
        await wait_until(lambda n=name: failing(a, n), timeout=60, what=f"{name} failing on a")
    # Thawed: the same connection; b answers pings and probes again.
    b.signal(signal.SIGCONT)
    for name in ("p2p-connectivity", "pubsub-active-probe"):
        await wait_until(lambda n=name: passing(a, n), timeout=60, what=f"{name} back after thaw")

    # Killed: the connection closes at once.
    b.signal(signal.SIGKILL)
    await wait_until(
        lambda: failing(a, "p2p-connectivity"),
        timeout=60,
        what="p2p-connectivity failing after SIGKILL",
    )
    # Restarted from the same data dir: the same peer ID, and a is whole again.
    assert b.process is not None
    b.process.wait(10)
    b.start()
    await b.wait_listening()
    assert b.peer_id == b_id, "the restarted node must keep its peer ID"
    for name in ("p2p-connectivity", "pubsub-active-probe"):
        await wait_until(lambda n=name: passing(a, n), timeout=60, what=f"{name} after restart")
