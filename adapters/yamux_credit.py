"""Yamux flow-control credit as go-yamux grants it, not after every read.

py-libp2p 0.8.1's ``YamuxStream._auto_tune_and_send_window_update`` sends a WINDOW_UPDATE
frame for (nearly) every read: its release-on-read and "partial slack" branches both fire
whenever any credit is owed. On an idle 10-node cluster that was 63 % of all TCP writes
(one 12-byte frame, one packet and one ACK per GossipSub message received, several per
ping and Kademlia stream) (devnet/cost_breakdown.py, 2026-12-02). go-yamux
(``session.go`` sendWindowUpdate) sends one only when the owed credit reaches half the
receive window.

:func:`install` replaces the method with that rule: credit is granted once the consumed
bytes reach ``target_recv_window // 2`` (128 KiB of the 256 KiB window). The receive
window never grows beyond its 256 KiB (py-libp2p's auto-tune would double it up to 16 MiB),
so a peer can never have more unacknowledged bytes in flight than before.

The auto-tune was the one reader of the round-trip time yamux measures with a session ping
every ``RTT_MEASURE_INTERVAL`` (30 s) on every connection: with it gone, :func:`install`
stretches that to an hour. At 10 idle nodes those pings were 0.6 writes a second a node and
as many answers, with their ACKs (devnet/cost_breakdown.py, 2026-12-05).
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]

_MARK = "_chorus_lazy_credit"
RTT_INTERVAL = 3600


def install() -> None:
    """Idempotent."""
    from libp2p.stream_muxer.yamux import yamux

    if getattr(yamux.YamuxStream._auto_tune_and_send_window_update, _MARK, False):
        return

    async def send_credit_when_half_used(self: Any, *, bytes_read: int = 0) -> None:
        grant = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            owed = self.target_recv_window - (self.recv_window + buffered)
            if owed > 0 and owed >= self.target_recv_window // 2:
                self.recv_window += owed
                self._pending_recv_release = 0
                grant = owed
        if grant > 0:
            await self.send_window_update(grant, skip_lock=True)

    setattr(send_credit_when_half_used, _MARK, True)
    yamux.RTT_MEASURE_INTERVAL = max(yamux.RTT_MEASURE_INTERVAL, RTT_INTERVAL)
    # A deliberate patch of py-libp2p's class (this module's whole point), which mypy
    # refuses for any method assignment.
    yamux.YamuxStream._auto_tune_and_send_window_update = send_credit_when_half_used  # type: ignore[method-assign]
