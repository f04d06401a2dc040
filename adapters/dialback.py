"""Dial-back: does anything still listen where a suspect says it listens?

When a process dies its kernel closes its sockets: our connection to it ends within a
fraction of a second, and a new TCP connection to its port is refused at once (a reset).
A live process whose connection merely dropped, a frozen one (its kernel still completes
handshakes) and a machine that vanished (no reset, the dial times out) all answer
otherwise. So a refused dial to every address a member advertises is the strongest
evidence of a crash there is, and nobody can forge it for us: it is our kernel's answer,
which is why the view trusts it (``ClusterView.on_refused``, rule 7) and why every
observer dials for itself rather than believing another's word.

:class:`DialBack` takes requests from the gossip service (on a disconnect, and on a
suspicion of a peer we are not connected to), dials each peer at most once per
``cooldown``, a few at a time, and reports the result. Requests beyond ``max_pending``
are dropped: suspicions are what a hostile member can send us, and each must cost at most
one bounded dial. Only plain TCP connects are made, to the addresses the member signed
for itself, and closed at once; no libp2p handshake, so a dial costs the listener an
accept and nothing more.
"""

from __future__ import annotations

import enum
import logging
import math
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence

import trio

__all__ = ["DialBack", "DialResult", "dial_back", "tcp_targets"]

logger = logging.getLogger(__name__)


class DialResult(enum.StrEnum):
    REFUSED = "refused"  # every address answered with a reset: nothing listens
    OPEN = "open"  # some address accepted the connection
    UNKNOWN = "unknown"  # no usable address, or no answer in time (a vanished host)


# One member advertises a handful of addresses; a digest may carry more, and we dial at
# most this many of them.
MAX_TARGETS = 4


def tcp_targets(addrs: Sequence[str], peer: str) -> list[tuple[int, str, int]]:
    """``(family, host, port)`` of the ``/ip4|ip6/<host>/tcp/<port>/p2p/<peer>`` addresses
    in ``addrs``, at most MAX_TARGETS. Anything else (DNS names, other transports, another
    peer's id) is skipped: a digest must not aim our dials anywhere but at its signer."""
    targets: list[tuple[int, str, int]] = []
    for addr in addrs:
        parts = addr.split("/")
        # ['', 'ip4', host, 'tcp', port, 'p2p', peer]
        if len(parts) != 7 or parts[0] or parts[3] != "tcp" or parts[5] != "p2p":
            continue
        if parts[6] != peer or not parts[4].isdigit():
            continue
        family = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}.get(parts[1])
        port = int(parts[4])
        if family is None or not 0 < port < 65536:
            continue
        try:
            socket.inet_pton(family, parts[2])
        except OSError:
            continue
        targets.append((family, parts[2], port))
        if len(targets) >= MAX_TARGETS:
            break
    return targets


async def _dial_one(family: int, host: str, port: int, timeout: float) -> DialResult:
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    with sock:
        with trio.move_on_after(timeout):
            try:
                await sock.connect((host, port))
            except ConnectionRefusedError:
                return DialResult.REFUSED
            except OSError:
                return DialResult.UNKNOWN
            return DialResult.OPEN
    return DialResult.UNKNOWN


async def dial_back(addrs: Sequence[str], peer: str, timeout: float) -> DialResult:
    """Dial each of ``peer``'s TCP addresses (one after another, ``timeout`` each): OPEN
    if one accepts, REFUSED only if every one refused, UNKNOWN otherwise."""
    targets = tcp_targets(addrs, peer)
    if not targets:
        return DialResult.UNKNOWN
    results = [await _dial_one(*target, timeout) for target in targets]
    if DialResult.OPEN in results:
        return DialResult.OPEN
    if all(result is DialResult.REFUSED for result in results):
        return DialResult.REFUSED
    return DialResult.UNKNOWN


Addresses = Callable[[str], Sequence[str]]
Report = Callable[[str, DialResult], None]


class DialBack:
    """Bounded dial-backs; see the module docstring. ``counts`` holds the results."""

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        cooldown: float = 1.0,
        max_concurrent: int = 4,
        max_pending: int = 64,
    ) -> None:
        if not (timeout > 0 and cooldown >= 0 and max_concurrent >= 1 and max_pending >= 1):
            raise ValueError("dial-back timeout > 0, cooldown >= 0, limits >= 1 required")
        self.timeout = timeout
        self.cooldown = cooldown
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self.counts: dict[str, int] = dict.fromkeys([*DialResult, "dropped"], 0)
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._last: OrderedDict[str, float] = OrderedDict()  # peer -> when last dialled
        self._wake = trio.Event()

    def request(self, peer: str) -> bool:
        """Ask for a dial-back of ``peer``; False if it was dropped (dialled within the
        cooldown, already pending, or too many pending)."""
        now = trio.current_time()
        last = self._last.get(peer, -math.inf)
        if peer in self._pending or now - last < self.cooldown:
            return False
        if len(self._pending) >= self.max_pending:
            self.counts["dropped"] += 1
            return False
        self._pending[peer] = None
        self._wake.set()
        return True

    async def run(self, addresses: Addresses, report: Report) -> None:
        """Dial what is requested until cancelled; ``report(peer, result)`` each time.
        ``addresses(peer)`` is read when the dial starts, so it dials what is known then."""
        slots = trio.Semaphore(self.max_concurrent)
        async with trio.open_nursery() as nursery:
            while True:
                if not self._pending:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await slots.acquire()
                peer, _ = self._pending.popitem(last=False)
                self._remember(peer)
                nursery.start_soon(self._dial, peer, addresses, report, slots)

    def _remember(self, peer: str) -> None:
        now = trio.current_time()
        self._last[peer] = now
        self._last.move_to_end(peer)
        # Entries older than the cooldown decide nothing: drop them, so the table holds
        # at most what one cooldown's requests can add.
        while self._last:
            oldest, when = next(iter(self._last.items()))
            if now - when < self.cooldown:
                break
            if oldest == peer:
                break
            del self._last[oldest]

    async def _dial(
        self, peer: str, addresses: Addresses, report: Report, slots: trio.Semaphore
    ) -> None:
        try:
            result = await dial_back(addresses(peer), peer, self.timeout)
            self.counts[result] += 1
            logger.debug("dial-back of %s: %s", peer, result)
            report(peer, result)
        except Exception:  # a report that fails must not end the dial-backs
            logger.exception("dial-back of %s failed", peer)
        finally:
            slots.release()
