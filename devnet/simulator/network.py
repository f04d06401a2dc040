"""The network model: per-link latency, loss as TCP sees it, partitions, and the tally.

Every libp2p stream the mesh uses (GossipSub, pings, pulls) runs over TCP, so a lost packet
is not a lost message: the kernel retransmits it after its retransmission timeout (200 ms
minimum on Linux, doubling with each further loss of the same segment) and, since TCP
delivers in order, everything behind it on the connection waits too (head-of-line
blocking). That is what the devnet's nftables loss produces, and what ``send`` models: each
transmission is lost with probability ``loss``, each loss adds an RTO, and an arrival is
never earlier than the previous arrival on the same directed link. A partition drops
packets for good (no reset either, so nobody hears a disconnect from it).

Latency is one base delay per link (lognormal around ``latency``: some pairs of hosts are
farther apart than others) plus exponential jitter per message.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from devnet.simulator.events import EventLoop

__all__ = ["FRAME_OVERHEAD", "LinkModel", "Network", "Tally"]

# Bytes a message costs on the wire beyond its payload: TCP/IP headers (40), Noise's
# framing and tag (18), yamux's frame header (12), and the protobuf RPC wrapper (~10).
FRAME_OVERHEAD = 80
RTO_MIN = 0.2  # Linux's minimum retransmission timeout, seconds
MAX_RETRANSMITS = 15  # tcp_retries2: beyond that the kernel gives the connection up


@dataclass(frozen=True, slots=True)
class LinkModel:
    latency: float = 0.0005  # median one-way delay of a link, seconds (one data centre)
    spread: float = 0.5  # sigma of the lognormal of the links' base delays
    jitter: float = 0.0002  # mean of the exponential extra delay per message, seconds
    loss: float = 0.0  # probability that one transmission of a segment is lost


@dataclass(slots=True)
class Tally:
    """What one node sent, by kind (GossipSub data, control, pings, pulls)."""

    messages: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    retransmits: int = 0

    def add(self, kind: str, size: int, count: int = 1) -> None:
        """``count`` messages of ``size`` payload bytes in all."""
        self.messages[kind] = self.messages.get(kind, 0) + count
        self.bytes[kind] = self.bytes.get(kind, 0) + size + FRAME_OVERHEAD * count


class Network:
    def __init__(self, loop: EventLoop, model: LinkModel, rng: random.Random, n: int) -> None:
        self.loop = loop
        self.model = model
        self._rng = rng
        self._base: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self.tallies = [Tally() for _ in range(n)]
        self._n = n
        self.counting = True  # off during warm-up, so the figures are the scenario's only
        self._side: dict[int, int] = {}  # node -> partition side; absent = side 0
        # (a, b) -> when a last retransmitted to b: what a's TCP_INFO shows
        # (adapters/tcp_witness.py).
        self.retransmitted: dict[tuple[int, int], float] = {}

    def reset_tallies(self) -> None:
        self.tallies = [Tally() for _ in range(self._n)]

    def partition(self, sides: dict[int, int]) -> None:
        self._side = dict(sides)

    def heal(self) -> None:
        self._side = {}

    def reachable(self, a: int, b: int) -> bool:
        return self._side.get(a, 0) == self._side.get(b, 0)

    def base_delay(self, a: int, b: int) -> float:
        key = (a, b) if a < b else (b, a)
        base = self._base.get(key)
        if base is None:
            m = self.model
            base = m.latency * math.exp(self._rng.gauss(0.0, m.spread))
            self._base[key] = base
        return base

    def delay(self, a: int, b: int) -> float:
        """One transmission's one-way delay from ``a`` to ``b``, retransmissions included."""
        m = self.model
        delay = self.base_delay(a, b) + self._rng.expovariate(1.0 / m.jitter)
        rto = max(RTO_MIN, 4 * self.base_delay(a, b))
        losses = 0
        while m.loss > 0 and losses < MAX_RETRANSMITS and self._rng.random() < m.loss:
            delay += rto * 2**losses
            losses += 1
        if losses:
            self.retransmitted[(a, b)] = self.loop.now
            if self.counting:
                self.tallies[a].retransmits += losses
        return delay

    def send(
        self, a: int, b: int, kind: str, size: int, deliver: Callable[[], None], count: int = 1
    ) -> None:
        """Send ``count`` messages of ``size`` payload bytes in all from ``a`` to ``b`` in
        one write; ``deliver`` runs on arrival, in order on the link, unless a partition
        swallows it."""
        if self.counting:
            self.tallies[a].add(kind, size, count)
        if not self.reachable(a, b):
            return
        arrival = self.loop.now + self.delay(a, b)
        link = (a, b)
        arrival = max(arrival, self._last.get(link, 0.0))
        self._last[link] = arrival
        self.loop.at(arrival, deliver)

    def signal(self, a: int, b: int, deliver: Callable[[], None]) -> None:
        """A kernel's packet (FIN, reset, SYN answer): not tallied as a message, still
        subject to latency, loss and partitions."""
        if self.reachable(a, b):
            self.loop.later(self.delay(a, b), deliver)
