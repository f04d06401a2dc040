"""Yamux credit as go-yamux grants it (adapters/yamux_credit.py), on real hosts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux import yamux

from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig

pytestmark = pytest.mark.network

ECHO = TProtocol("/chorus-test/sink/1.0.0")


async def test_small_messages_cost_no_window_updates_and_large_ones_still_flow(
    p2p_config: Callable[..., P2PConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    updates: list[int] = []
    original = yamux.YamuxStream.send_window_update

    async def counted(self: yamux.YamuxStream, increment: int, skip_lock: bool = False) -> None:
        updates.append(increment)
        await original(self, increment, skip_lock=skip_lock)

    monkeypatch.setattr(yamux.YamuxStream, "send_window_update", counted)
    received = 0
    done = trio.Event()

    async def sink(stream: object) -> None:
        nonlocal received
        while received < 20 * 100 + 600 * 1024:
            data = await stream.read(65536)  # type: ignore[attr-defined]
            if not data:
                break
            received += len(data)
        done.set()

    async with open_p2p_node(p2p_config("a")) as a, open_p2p_node(p2p_config("b")) as b:
        b.host.set_stream_handler(ECHO, sink)  # type: ignore[arg-type]
        await a.connect(b.listen_addrs[0])
        stream = await a.host.new_stream(ID.from_base58(b.peer_id), [ECHO])
        for _ in range(20):  # twenty GossipSub-sized messages
            await stream.write(b"x" * 100)
        with trio.fail_after(10):
            while received < 2000:  # noqa: ASYNC110 (library state, no event to wait on)
                await trio.sleep(0.01)
        # py-libp2p's own rule sends one WINDOW_UPDATE per read: twenty here.
        assert updates == []
        # 600 KiB: more than two windows' worth, so it only arrives if credit is granted.
        await stream.write(b"y" * (600 * 1024))
        with trio.fail_after(20):
            await done.wait()
        assert received == 2000 + 600 * 1024
        assert updates and all(u >= 128 * 1024 for u in updates)


def test_the_rtt_pings_nothing_reads_any_more_go_out_hourly() -> None:
    from adapters import yamux_credit

    yamux_credit.install()
    assert yamux.RTT_MEASURE_INTERVAL >= 3600
