"""Counting a cluster's traffic on the loopback interface: bytes and packets sent to or
from a set of ports, read from a raw socket in a thread of its own.

The bench's idle-cost figure and ``devnet.cost_breakdown`` (which refines it per protocol)
count the same way, so both build on :class:`LoopbackCounter`.
"""

from __future__ import annotations

import socket
import struct
import threading

__all__ = ["LoopbackCounter"]


class LoopbackCounter:
    """Counts IPv4 bytes (IP header included) sent on ``lo`` to or from any of ``ports``.

    A raw AF_PACKET socket sees every loopback packet twice, once outgoing and once
    incoming; only the outgoing copy is counted. Needs CAP_NET_RAW (root here); without it
    ``available`` is False and the figure is reported as n/a.
    """

    PACKET_OUTGOING = 4

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.bytes = 0
        self.packets = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._sock: socket.socket | None = socket.socket(
                # ETH_P_ALL: taps bound to one protocol never see outgoing copies.
                socket.AF_PACKET,
                socket.SOCK_RAW,
                socket.ntohs(0x0003),
            )
            self._sock.bind(("lo", 0))
            self._sock.settimeout(0.2)
        except (OSError, AttributeError):
            self._sock = None

    @property
    def available(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> LoopbackCounter:
        if self._sock is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != self.PACKET_OUTGOING or len(data) < 14 + 24:
                continue
            if data[12:14] != b"\x08\x00":  # IPv4 only: the nodes listen on 127.0.0.1
                continue
            self.count(data[14:])

    def count(self, ip: bytes) -> None:
        """Count one outgoing IPv4 packet if it is TCP or UDP to or from our ports."""
        if ip[9] not in (6, 17):  # TCP, UDP
            return
        header = (ip[0] & 0x0F) * 4
        source, dest = struct.unpack("!HH", ip[header : header + 4])
        if source in self.ports or dest in self.ports:
            self.bytes += struct.unpack("!H", ip[2:4])[0]
            self.packets += 1
