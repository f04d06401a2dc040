"""PingResponder: echoes, keeps idle streams for ``idle``, bounds streams per peer."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import trio
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.host.ping import PING_LENGTH
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.id import ID

from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from adapters.ping_responder import PingResponder
from tests.adapters import WaitUntil

PEER = ID(b"pinging-peer")


class Stream:
    """An inbound ping stream: ``pings`` arrive at the given times, then it stays open."""

    def __init__(self, pings: list[float], peer: ID = PEER) -> None:
        self.muxed_conn = SimpleNamespace(peer_id=peer)
        self._pings = list(pings)
        self.echoed: list[float] = []
        self.ended: str | None = None

    async def read(self, n: int = -1) -> bytes:
        if not self._pings:
            await trio.sleep_forever()
        await trio.sleep_until(self._pings.pop(0))
        return b"p" * PING_LENGTH

    async def write(self, data: bytes) -> None:
        assert data == b"p" * PING_LENGTH
        self.echoed.append(trio.current_time())

    async def close(self) -> None:
        self.ended = f"closed at {trio.current_time():g}"

    async def reset(self) -> None:
        self.ended = f"reset at {trio.current_time():g}"


async def test_pings_apart_by_more_than_py_libp2ps_ten_seconds_keep_their_stream(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Our round robin at 20 peers comes back after about 9.5 s, often more.
    stream = Stream([1.0, 16.0, 40.0])
    await PingResponder(idle=30.0).handle(stream)  # type: ignore[arg-type]
    assert stream.echoed == [1.0, 16.0, 40.0]
    assert stream.ended == "reset at 70"  # idle for 30 s after the last one


async def test_a_third_stream_of_one_peer_resets_its_oldest_and_nothing_stays_counted(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Two abandoned streams (py-libp2p's pinger leaves a timed-out one open) must not lock
    # the peer's next pings out: the newest is the one in use.
    responder = PingResponder(idle=5.0, per_peer=2)
    abandoned = [Stream([]), Stream([])]
    used = Stream([1.0, 2.0])
    other = Stream([1.0], peer=ID(b"another-peer"))
    async with trio.open_nursery() as nursery:
        for stream in abandoned:
            nursery.start_soon(responder.handle, stream)
            await trio.sleep(0.1)
        nursery.start_soon(responder.handle, used)
        nursery.start_soon(responder.handle, other)
        await trio.sleep(0.5)
        assert responder.open(PEER.to_base58()) == 2
        assert abandoned[0].ended == "reset at 0.2"
    assert used.echoed == [1.0, 2.0] and used.ended == "reset at 7"
    assert abandoned[1].ended == "reset at 5.1"  # idle
    assert other.echoed == [1.0]
    assert responder._open == {}


async def test_a_stream_that_breaks_is_reset_without_raising(
    autojump_clock: trio.abc.Clock,
) -> None:
    class Broken(Stream):
        async def read(self, n: int = -1) -> bytes:
            raise ConnectionResetError("gone")

    stream = Broken([])
    responder = PingResponder()
    await responder.handle(stream)  # type: ignore[arg-type]
    assert stream.ended == "reset at 0" and responder._open == {}


@pytest.mark.parametrize("idle", [0.0, -1.0])
def test_idle_must_be_positive(idle: float) -> None:
    with pytest.raises(ValueError):
        PingResponder(idle=idle)


@pytest.mark.network
async def test_a_real_node_answers_pings_with_ours(
    p2p_config: Callable[..., P2PConfig], wait_until: WaitUntil
) -> None:
    # b's responder closes a stream idle for 0.3 s; py-libp2p's would keep it 10 s.
    async with (
        open_p2p_node(p2p_config("a", enable_link_pings=False)) as a,
        open_p2p_node(p2p_config("b", enable_link_pings=False, ping_stream_idle=0.3)) as b,
    ):
        await a.connect(b.listen_addrs[0])
        stream = await a.host.new_stream(b.host.get_id(), [PING_PROTOCOL])
        await stream.write(b"x" * PING_LENGTH)
        with trio.fail_after(5):
            assert await stream.read(PING_LENGTH) == b"x" * PING_LENGTH
            began = trio.current_time()
            with pytest.raises((StreamEOF, StreamReset)):  # ended by b, idle
                await stream.read(PING_LENGTH)
        assert trio.current_time() - began >= 0.25
