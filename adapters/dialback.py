"""Dial-back: does anything still listen where a suspect says it listens?

When a process dies its kernel closes its sockets: our connection to it ends within a
fraction of a second, and a new TCP connection to its port is refused at once (a reset).
A live process whose connection merely dropped, a frozen one (its kernel still completes
handshakes) and a machine that vanished (no reset, the dial times out) all answer
otherwise. So a refused dial to every address a member advertises is the strongest
evidence of a crash there is, and nobody can forge it for us: it is our kernel's answer,
which is why the view trusts it (``ClusterView.on_refused``, rule 7) and why every
observer dials for itself rather than believing another's word.

:func:`dial_back` makes plain TCP connects to the addresses the member signed for
itself, closed at once: no libp2p handshake, so a dial costs the listener an accept and
nothing more. :class:`Verifier` runs the checks the gossip service asks for (on a
disconnect, and on every suspicion it hears: a dial-back for a peer we are not connected
to, a ping out of turn for one we are), each peer at most once per ``cooldown``, a few at
a time. Requests beyond ``max_pending`` are dropped: suspicions are what a hostile member
can send us, and each must cost at most one bounded check.
"""

from __future__ import annotations

import enum
import logging
import math
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import trio

__all__ = ["DialResult", "Verifier", "dial_back", "tcp_targets"]

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


Verify = Callable[[str], Awaitable[None]]


class Verifier:
    """Bounded checks of suspects; see the module docstring. ``counts["dropped"]``:
    requests dropped for a full queue."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,  # the longest one check may take
        cooldown: float = 1.0,
        max_concurrent: int = 4,
        max_pending: int = 64,
    ) -> None:
        if not (timeout > 0 and cooldown >= 0 and max_concurrent >= 1 and max_pending >= 1):
            raise ValueError("check timeout > 0, cooldown >= 0, limits >= 1 required")
        self.timeout = timeout
        self.cooldown = cooldown
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self.counts: dict[str, int] = {"dropped": 0}
        self._pending: dict[str, float] = {}  # peer -> when its check may start
        self._last: OrderedDict[str, float] = OrderedDict()  # peer -> when last dialled
        self._wake = trio.Event()

    def request(self, peer: str, *, urgent: bool = False) -> bool:
        """Ask for a check of ``peer``: at once, or once the cooldown since its last
        check has passed (news that came in between, such as a crash right after a
        check, must not go unchecked). ``urgent``: at once whatever the cooldown, for
        news that only the kernel gives (our last connection to it closed: the ping
        we may have just sent it says nothing about a dial). False if it was already
        pending (an urgent request still moves it to the front) or dropped because
        too many are."""
        due = -math.inf if urgent else self._last.get(peer, -math.inf) + self.cooldown
        if peer in self._pending:
            self._pending[peer] = min(self._pending[peer], due)
            self._wake.set()
            return False
        if len(self._pending) >= self.max_pending:
            self.counts["dropped"] += 1
            return False
        self._pending[peer] = due
        self._wake.set()
        return True

    async def run(self, verify: Verify) -> None:
        """Run ``verify(peer)`` for each request until cancelled, at most
        ``max_concurrent`` at once; ``verify`` is bounded in time by its caller."""
        slots = trio.Semaphore(self.max_concurrent)
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                if not self._pending:
                    await self._wake.wait()
                    continue
                peer, due = min(self._pending.items(), key=lambda item: item[1])
                if due > trio.current_time():
                    with trio.move_on_at(due):
                        await self._wake.wait()
                    continue
                await slots.acquire()
                if self._pending.pop(peer, None) is None:
                    slots.release()
                    continue
                self._remember(peer)
                nursery.start_soon(self._check, peer, verify, slots)

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

    async def _check(self, peer: str, verify: Verify, slots: trio.Semaphore) -> None:
        try:
            with trio.move_on_after(self.timeout):
                await verify(peer)
        except Exception:  # one failed check must not end the others
            logger.exception("check of %s failed", peer)
        finally:
            slots.release()
