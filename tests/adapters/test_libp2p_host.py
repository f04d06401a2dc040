"""The node's libp2p edge, with real py-libp2p hosts on 127.0.0.1 (port 0)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from adapters import p2p_identity
from adapters.host_teardown import tidy_exit_error
from adapters.libp2p_host import open_p2p_node, run_p2p_node
from adapters.p2p_config import P2PConfig, P2PError
from adapters.p2p_identity import load_or_create_identity
from adapters.p2p_node import P2PNode
from probes.ports import PubSubMessage
from tests.adapters import WaitUntil, in_mesh

REPO = Path(__file__).resolve().parents[2]
MakeConfig = Callable[..., P2PConfig]


# ------------------------------------------------------------------ no network


def _private_file(path: Path, data: bytes) -> Path:
    """``path`` holding ``data`` with mode 0600 whatever the umask, as a key file must be."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_corrupt_key_file_raises_clear_error(tmp_path: Path) -> None:
    key_file = _private_file(tmp_path / "node.key", b"this is not a protobuf private key")
    with pytest.raises(P2PError, match="corrupt"):
        load_or_create_identity(key_file)


async def test_corrupt_key_file_stops_node_start(tmp_path: Path) -> None:
    key_file = _private_file(tmp_path / "node.key", b"")
    with pytest.raises(P2PError, match=str(key_file)):
        async with open_p2p_node(P2PConfig(key_file=key_file, listen_port=0)):
            pytest.fail("a node started with a corrupt key")


def test_new_key_file_is_0600_and_loads_again(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "node.key"
    created = load_or_create_identity(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_or_create_identity(key_file).public_key == created.public_key
    assert [p.name for p in key_file.parent.iterdir()] == ["node.key"]  # no temp file left


@pytest.mark.parametrize(
    "mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o666, 0o610, 0o601], ids=oct
)
def test_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "node.key"
    load_or_create_identity(key_file)
    key_file.chmod(mode)
    with pytest.raises(P2PError) as caught:
        load_or_create_identity(key_file)
    message = str(caught.value)
    assert "\n" not in message
    assert str(key_file) in message
    assert f"mode {mode:04o}" in message
    assert f"chmod 600 {key_file}" in message
    assert stat.S_IMODE(key_file.stat().st_mode) == mode  # refused, not quietly fixed


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=oct)
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "node.key"
    created = load_or_create_identity(key_file)
    key_file.chmod(mode)
    assert load_or_create_identity(key_file).public_key == created.public_key


def test_symlink_at_the_old_temp_path_is_not_followed(tmp_path: Path) -> None:
    """Before the fix the key was written through ``.node.key.tmp`` with O_TRUNC and no
    O_EXCL: a symlink planted there truncated its target, and the rename then made the
    key file that symlink."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    (tmp_path / ".node.key.tmp").symlink_to(victim)
    key_file = tmp_path / "node.key"
    load_or_create_identity(key_file)
    assert victim.read_bytes() == b"precious"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not key_file.is_symlink()
    assert stat.S_IMODE(key_file.lstat().st_mode) == 0o600


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_anything_at_the_temp_path_is_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """The temp name is random; pin it to plant something there first. O_EXCL refuses a
    file that exists, O_NOFOLLOW a symlink, so the victim is never written."""
    monkeypatch.setattr(p2p_identity, "_temp_key_path", lambda key_file: tmp_path / "fixed.tmp")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    if planted == "symlink":
        (tmp_path / "fixed.tmp").symlink_to(victim)
    else:
        os.link(victim, tmp_path / "fixed.tmp")  # same inode: writing it would show
    key_file = tmp_path / "node.key"
    with pytest.raises(P2PError, match="cannot create identity key file"):
        load_or_create_identity(key_file)
    assert victim.read_bytes() == b"precious"
    assert not key_file.exists()
    assert os.path.lexists(tmp_path / "fixed.tmp")  # not ours, so not ours to delete


def test_stale_temp_from_a_crash_does_not_block_creation(tmp_path: Path) -> None:
    # What a crash between open and rename left behind in earlier versions.
    _private_file(tmp_path / ".node.key.tmp", b"half a ke")
    key_file = tmp_path / "node.key"
    created = load_or_create_identity(key_file)
    assert load_or_create_identity(key_file).public_key == created.public_key


def test_cli_refuses_a_key_file_open_to_others(tmp_path: Path) -> None:
    """The real entry point: exit code 2 (invalid configuration) and one line to act on."""
    data_dir = tmp_path / "data"
    key_file = data_dir / "identity.key"
    load_or_create_identity(key_file)
    key_file.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    env["PYTHONPATH"] = str(REPO)
    argv = ["--data-dir", str(data_dir), "--health-port", "0", "--p2p-port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"chorus-health: error: identity key file {key_file} has mode 0644, so group or "
        f"others can read or write it; the node refuses it: run chmod 600 {key_file}"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize(
    "overrides",
    [
        {"bootstrap": ("not-a-multiaddr",)},
        {"bootstrap": ("/ip4/127.0.0.1/tcp/9001",)},  # no /p2p/ peer id
        {"listen_port": 70000},
        {"gossip_degree_low": 8, "gossip_degree": 6},
        {"ping_timeout": 0},
    ],
)
def test_bad_config_is_rejected_up_front(tmp_path: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(P2PError):
        P2PConfig(key_file=tmp_path / "k", **overrides)  # type: ignore[arg-type]


_RACE = "Nursery is closed to new arrivals"


def test_shutdown_race_is_contained_and_nothing_else() -> None:
    race, other = RuntimeError(_RACE), ValueError("real")
    assert tidy_exit_error(ExceptionGroup("g", [race, RuntimeError(_RACE)]), []) is None
    rest = tidy_exit_error(ExceptionGroup("g", [race, ExceptionGroup("h", [other])]), [])
    assert isinstance(rest, ExceptionGroup)
    assert rest.exceptions[0].exceptions == (other,)
    # The caller's own error comes back unwrapped; so does ours.
    assert tidy_exit_error(ExceptionGroup("g", [race, other]), [other]) is other
    mine = P2PError("x")
    assert tidy_exit_error(ExceptionGroup("g", [ExceptionGroup("h", [mine])]), []) is mine


# ------------------------------------------------------------- identity, addrs


@pytest.mark.network
async def test_key_file_is_0600_and_peer_id_survives_restart(p2p_config: MakeConfig) -> None:
    cfg = p2p_config("a")
    async with open_p2p_node(cfg) as first:
        first_id = first.peer_id
        [addr] = first.listen_addrs
        assert addr.startswith("/ip4/127.0.0.1/tcp/")
        assert addr.endswith(f"/p2p/{first_id}")
        assert not addr.startswith("/ip4/127.0.0.1/tcp/0/")  # the real bound port
    assert stat.S_IMODE(cfg.key_file.stat().st_mode) == 0o600
    async with open_p2p_node(cfg) as second:
        assert second.peer_id == first_id


@pytest.mark.network
async def test_port_in_use_raises(p2p_config: MakeConfig) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(P2PError, match="cannot listen"):
            async with open_p2p_node(p2p_config("a", listen_port=port)):
                pytest.fail("a node started without a listener")


@pytest.mark.network
async def test_exception_in_body_is_not_wrapped_in_a_group(p2p_config: MakeConfig) -> None:
    with pytest.raises(KeyError):
        async with open_p2p_node(p2p_config("a")):
            raise KeyError("mine")


@pytest.mark.network
async def test_run_p2p_node_is_nursery_startable(p2p_config: MakeConfig) -> None:
    async with trio.open_nursery() as nursery:
        node: P2PNode = await nursery.start(run_p2p_node, p2p_config("a"))
        assert node.listen_addrs
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ bootstrap


@pytest.mark.network
async def test_three_nodes_connect_via_bootstrap(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with open_p2p_node(p2p_config("a")) as a:
        async with open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b:
            boot = (a.listen_addrs[0], b.listen_addrs[0])
            async with open_p2p_node(p2p_config("c", bootstrap=boot)) as c:
                with trio.fail_after(10):
                    await c.bootstrap_done.wait()
                assert c.bootstrap_results == {boot[0]: a.peer_id, boot[1]: b.peer_id}
                assert set(c.connected_peers()) == {a.peer_id, b.peer_id}
                # Connecting alone would not fill the routing table (notes, "Kademlia").
                assert {a.peer_id, b.peer_id} <= set(c.dht.local_peers())
                await wait_until(
                    lambda: set(a.connected_peers()) == {b.peer_id, c.peer_id},
                    what="a sees b and c",
                )
                # a learns b and c when they query it during their bootstrap.
                await wait_until(
                    lambda: {b.peer_id, c.peer_id} <= set(a.dht.local_peers()),
                    what="a's routing table holds b and c",
                )


@pytest.mark.network
async def test_unreachable_bootstrap_peer_is_given_up_in_bounded_time(
    p2p_config: MakeConfig,
) -> None:
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        dead = f"/ip4/127.0.0.1/tcp/{sock.getsockname()[1]}/p2p/{_random_peer_id()}"
    cfg = p2p_config(
        "a", bootstrap=(dead,), bootstrap_max_attempts=3, bootstrap_initial_backoff=0.01
    )
    async with open_p2p_node(cfg) as a:
        with trio.fail_after(5):
            await a.bootstrap_done.wait()
        assert a.bootstrap_results == {dead: None}
        assert a.connected_peers() == []


def _random_peer_id() -> str:
    from libp2p.crypto.ed25519 import create_new_key_pair

    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()


# ----------------------------------------------------------- failure detection


@pytest.mark.network
async def test_peer_listeners_see_connect_and_clean_close(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    connected: list[str] = []
    disconnected: list[str] = []
    async with open_p2p_node(p2p_config("a")) as a:
        a.add_peer_listener(connected.append, disconnected.append)
        async with open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b:
            await wait_until(lambda: connected == [b.peer_id], what="connect listener")
        await wait_until(lambda: disconnected == [b.peer_id], what="disconnect listener")
        assert a.connected_peers() == []


async def test_dial_back_targets_are_where_the_peer_was_authenticated(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    # The dial-back target (adapters/dialback.py): where we authenticated the peer, or
    # where it says it listens only at the IP its connection came from.
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        await wait_until(lambda: a.peer_id in b.connected_peers(), what="b dialled a")
        port = int(a.listen_addrs[0].split("/")[4])
        assert b.dialled_address(a.peer_id) == ("127.0.0.1", port)
        assert a.dialled_address(b.peer_id) is None
        assert a.dialled_address("not a peer id") is None
        # b only dialled a: a may dial b back at an address b advertises, but only at the
        # IP b's connection came from, only naming b, never at a host b merely names.
        b_port = int(b.listen_addrs[0].split("/")[4])
        own = f"/ip4/127.0.0.1/tcp/{b_port}/p2p/{b.peer_id}"
        elsewhere = f"/ip4/10.9.9.9/tcp/{b_port}/p2p/{b.peer_id}"
        someone_else = f"/ip4/127.0.0.1/tcp/{b_port}/p2p/{a.peer_id}"
        assert a.dial_back_target(b.peer_id, [elsewhere, own]) == ("127.0.0.1", b_port)
        assert a.dial_back_target(b.peer_id, [elsewhere, someone_else]) is None
        assert b.dial_back_target(a.peer_id, [elsewhere]) == ("127.0.0.1", port)  # dialled
        # A peer we never met: only a certified one, at a unicast address it names (on
        # loopback, as we listen on loopback alone).
        stranger = "12D3KooWStranger"
        named = f"/ip4/127.0.0.1/tcp/4001/p2p/{stranger}"
        unspecified = f"/ip4/0.0.0.0/tcp/4001/p2p/{stranger}"
        assert a.dial_back_target(stranger, [named]) is None
        assert a.dial_back_target(stranger, [unspecified, named], certified=True) == (
            "127.0.0.1",
            4001,
        )
        assert a.dial_back_target(stranger, [unspecified], certified=True) is None
        # Met, but only at an IP it does not advertise: certified or not, not dialled.
        assert a.dial_back_target(b.peer_id, [elsewhere], certified=True) is None


async def test_pings_reuse_one_stream_and_replace_a_closed_one(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        await wait_until(lambda: a.peer_id in b.connected_peers(), what="connected")
        # Keep b's own round robin off this peer: a ping of its turn on the same kept
        # stream, at the moment of ours, broke both and replaced the stream (CI, 50c041e).
        b.pinger._in_flight.add(a.host.get_id())
        (conn,) = b.host.get_network().connections[a.host.get_id()]
        assert await b.pinger.ping(conn)
        (stream,) = b.pinger._streams.values()
        assert await b.pinger.ping(conn) and await b.pinger.ping(conn)
        assert list(b.pinger._streams.values()) == [stream]  # one stream, three pings
        await stream.close()  # as a responder does after 10 s without a ping
        assert await b.pinger.ping(conn)  # answered on a fresh stream, not failed
        assert list(b.pinger._streams.values()) != [stream]


_CHILD = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from adapters.libp2p_host import open_p2p_node
    from adapters.p2p_config import P2PConfig

    async def main():
        async with open_p2p_node(P2PConfig(key_file=Path(sys.argv[1]), listen_port=0)) as n:
            print(n.listen_addrs[0], flush=True)
            await trio.sleep_forever()

    trio.run(main)
    """
)


@asynccontextmanager
async def _child_node(key_file: Path) -> AsyncIterator[tuple[trio.Process, str]]:
    """A node in its own OS process, so it can be frozen or killed for real."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", _CHILD, str(key_file)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                if not chunk:
                    pytest.fail("child node exited before printing its address")
                line += chunk
        yield proc, line.decode().strip()
    finally:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


@pytest.mark.network
async def test_killed_peer_triggers_disconnect_listener(
    p2p_config: MakeConfig, wait_until: WaitUntil, tmp_path: Path
) -> None:
    disconnected: list[str] = []
    async with (
        open_p2p_node(p2p_config("a")) as a,
        _child_node(tmp_path / "child.key") as (proc, addr),
    ):
        still_listed: list[bool] = []

        def lost(peer: str) -> None:
            disconnected.append(peer)
            # Heard when the close begins, not once py-libp2p has cleaned up and slept its
            # 0.1 s (SwarmConn._cleanup): the swarm still lists the connection.
            still_listed.append(peer in a.connected_peers())

        a.add_peer_listener(on_disconnected=lost)
        child_id = await a.connect(addr)
        assert child_id in a.connected_peers()
        os.kill(proc.pid, signal.SIGKILL)
        await wait_until(lambda: disconnected == [child_id], within=8, what="disconnect")
        assert still_listed == [True]
        await wait_until(lambda: child_id not in a.connected_peers(), what="connection dropped")
        assert disconnected == [child_id]  # once, not again when py-libp2p notifies


@pytest.mark.network
async def test_new_peer_gets_no_replay_of_old_messages(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with open_p2p_node(p2p_config("a")) as a:
        await a.pubsub.subscribe("t", _ignore)
        await a.pubsub.publish("t", b"old")  # into a's message cache, with nobody to hear it
        async with open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b:
            got: list[bytes] = []

            async def on_b(msg: PubSubMessage) -> None:
                got.append(msg.data)

            await b.pubsub.subscribe("t", on_b)
            # In a's mesh for "t": a publish before the graft would reach nobody.
            mesh = a.guarded_pubsub.router.mesh  # type: ignore[attr-defined]
            await wait_until(lambda: b.host.get_id() in mesh.get("t", ()), what="b in a's mesh")
            # Plain py-libp2p would now send b a's whole cache ("old") before "new".
            await a.pubsub.publish("t", b"new")
            await wait_until(lambda: b"new" in got, what="b hears the new message")
            assert got == [b"new"]


async def _ignore(msg: PubSubMessage) -> None:
    return None


@pytest.mark.network
@pytest.mark.parametrize(
    ("abort", "early"),
    [(True, 0.5), (False, 0.5), (False, None)],
    ids=["link-aborted", "link-kept", "no-early-verdict"],
)
async def test_frozen_peer_fails_pings_and_recovers(
    p2p_config: MakeConfig,
    wait_until: WaitUntil,
    tmp_path: Path,
    abort: bool,
    early: float | None,
) -> None:
    failed: list[str] = []
    disconnected: list[str] = []
    config = p2p_config("a", abort_connection_on_ping_failure=abort, ping_early_after=early)
    async with (
        open_p2p_node(config) as a,
        _child_node(tmp_path / "child.key") as (proc, addr),
    ):
        a.add_ping_failure_listener(failed.append)
        a.add_peer_listener(on_disconnected=disconnected.append)
        child_id = await a.connect(addr)
        # Answered pings first: a live child is not failed (a stall of a loaded CI box
        # may fail one at the early verdict, which this test is not about).
        await wait_until(lambda: a.pinger.answered >= 2, within=8, what="answered pings")
        before = len(failed)
        os.kill(proc.pid, signal.SIGSTOP)
        # The TCP connection stays open and its kernel acknowledges our pings: the next
        # ping (every 0.5 s) fails after 0.5 s on the kernel's word, or after its 2 s timeout.
        await wait_until(lambda: child_id in failed[before:], within=8, what="a failed ping")
        assert (a.pinger.silent > 0) is (early is not None)
        if abort:
            await wait_until(lambda: disconnected == [child_id], within=8, what="link aborted")
        else:
            assert child_id in a.connected_peers() and disconnected == []
            assert child_id not in a.responsive_peers()
        os.kill(proc.pid, signal.SIGCONT)
        if not abort:
            # Resumed on the same connection: pings are answered again.
            failures = a.pinger.failed
            sent = a.pinger.sent
            await wait_until(lambda: a.pinger.sent >= sent + 3, within=10, what="more pings")
            # At most one in flight across the thaw, and one more while the thawed child
            # catches up with its backlog (0.75 s with the early verdict).
            assert a.pinger.failed <= failures + 2
            assert child_id in a.connected_peers()
            await wait_until(
                lambda: child_id in a.responsive_peers(), within=5, what="responsive again"
            )


@pytest.mark.network
async def test_node_stopped_by_cancellation_closes_its_tcp_connections(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    # py-libp2p's host.close() left the TCP socket open in about half of these stops
    # (without _close_sockets): the peer never heard of it.

    async def run_b(
        name: str, scope: trio.CancelScope, *, task_status: trio.TaskStatus[P2PNode]
    ) -> None:
        with scope:
            await run_p2p_node(p2p_config(name), task_status=task_status)

    async with trio.open_nursery() as nursery:
        a: P2PNode = await nursery.start(run_p2p_node, p2p_config("a"))
        for i in range(6):
            b_scope = trio.CancelScope()
            b: P2PNode = await nursery.start(run_b, f"b{i}", b_scope)
            await b.connect(a.listen_addrs[0])
            b_scope.cancel()
            gone = b.peer_id
            await wait_until(
                lambda: gone not in a.connected_peers(),  # noqa: B023 (awaited at once)
                within=3,
                what="disconnect seen",
            )
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- hostile input


async def _subscribed_pair(
    a: P2PNode, b: P2PNode, topic: str, wait_until: WaitUntil
) -> tuple[list[PubSubMessage], list[PubSubMessage]]:
    got_a: list[PubSubMessage] = []
    got_b: list[PubSubMessage] = []

    async def on_a(msg: PubSubMessage) -> None:
        got_a.append(msg)

    async def on_b(msg: PubSubMessage) -> None:
        got_b.append(msg)

    await a.pubsub.subscribe(topic, on_a)
    await b.pubsub.subscribe(topic, on_b)
    await wait_until(lambda: in_mesh(a, b, topic) and in_mesh(b, a, topic), what="a and b meshed")
    return got_a, got_b


async def _assert_both_ways(
    a: P2PNode,
    b: P2PNode,
    got_a: list[PubSubMessage],
    got_b: list[PubSubMessage],
    wait_until: WaitUntil,
) -> None:
    await b.pubsub.publish("t", b"from b")
    await wait_until(lambda: b"from b" in [m.data for m in got_a], what="a hears b")
    await a.pubsub.publish("t", b"from a")
    await wait_until(lambda: b"from a" in [m.data for m in got_b], what="b hears a")


@pytest.mark.network
async def test_undecodable_pubsub_frame_does_not_kill_the_node(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    drops: list[str] = []
    async with (
        open_p2p_node(p2p_config("a"), on_drop=drops.append) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        got_a, got_b = await _subscribed_pair(a, b, "t", wait_until)
        # A raw stream on the GossipSub protocol carrying one frame protobuf cannot parse.
        # A plain py-libp2p 0.8.1 node dies of this (notes, "Hostile input").
        stream = await b.host.new_stream(a.host.get_id(), [PROTOCOL_ID_V11])
        await stream.write(encode_varint_prefixed(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
        await wait_until(lambda: drops == ["undecodable_rpc"], what="the frame is dropped")
        assert a.dropped_inbound["undecodable_rpc"] == 1
        await _assert_both_ways(a, b, got_a, got_b, wait_until)


@pytest.mark.network
async def test_message_with_garbage_key_does_not_kill_the_node(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        got_a, got_b = await _subscribed_pair(a, b, "t", wait_until)
        # Well-formed protobuf, but the sender id is no identity multihash and the key is
        # garbage: signature verification raises inside push_msg (notes, "Hostile input").
        evil = rpc_pb2.Message(
            from_id=b"\x01not-a-peer-id",
            data=b"evil",
            seqno=(1).to_bytes(8, "big"),
            topicIDs=["t"],
            signature=b"\x00" * 64,
            key=b"\xffgarbage key",
        )
        stream = await b.host.new_stream(a.host.get_id(), [PROTOCOL_ID_V11])
        await stream.write(encode_varint_prefixed(rpc_pb2.RPC(publish=[evil]).SerializeToString()))
        await wait_until(lambda: a.dropped_inbound["invalid_message"] == 1, what="dropped")
        await _assert_both_ways(a, b, got_a, got_b, wait_until)
        assert b"evil" not in [m.data for m in got_a]
