"""Dial-back: does anything still listen where a suspect listened?

When a process dies its kernel closes its sockets: our connection to it ends within a
fraction of a second, and a new TCP connection to its port is refused at once (a reset).
A live process whose connection merely dropped, a frozen one (its kernel still completes
handshakes) and a machine that vanished (no reset, the dial times out) all answer
otherwise. So a refused dial is the strongest evidence of a crash there is, and nobody can
forge it for us: it is our kernel's answer, which is why the view trusts it
(``ClusterView.on_refused``, rule 7) and why every observer dials for itself rather than
believing another's word.

Only one address is dialled (``P2PNode.dial_back_target``): where our own last outbound
connection to the peer was authenticated as that peer, or else one the peer advertises on
the very IP its authenticated connection to us came from. A digest could otherwise aim
every node's dials at any host and port (a port scan, or a flood of a third party from
inside the cluster), or at an address that refuses for reasons of its own (0.0.0.0, a NAT,
a REJECT rule) to have a live member declared dead. A peer we never met waits for the
suspicion's timeout or its witnesses, with one exception: in a cluster whose members an
admission authority certifies, and whose view holds at most
``GossipTuning.unmet_dial_members`` (32) live members heard firsthand, it is dialled where
it advertised itself, at a unicast IP (``adapters.dial_targets``). Up to that size every
node meets every member, so this is a joiner's first seconds: the newest of 20 nodes, 0.4 s
old at a kill, had met the victim nowhere and saw the kill last, 1-3.6 s late. That
refusal is our evidence alone, never published as a witness's: from where we stand the
address may be another host. What it costs: an admitted member can aim those nodes' dials
(one per suspicion of it, within the budget) at a host of its choosing, and learns at
most whether they were refused (our view turns it dead), once per suspicion. All
dial-backs share a rate (``GossipTuning.dialback_rate``), so Sybils suspected in turn
make no flood either.

:func:`dial_back` makes one plain TCP connect, kept open a moment (0.1 s) in case it is
reset and then closed: no libp2p handshake, so it costs the listener an accept and nothing
more. :class:`Verifier` runs the checks the
gossip service asks for (on a disconnect, and on every suspicion it hears: a dial-back
for a peer we are not connected to, a ping out of turn for one we are): one at a time
per peer, each peer at most once per ``cooldown`` (a request within it waits, it is not
lost), a few peers at a time. An urgent request (our own last connection to the peer just
closed) skips the cooldown and may run beside a check of the same peer that is under way:
that one may be a ping out of turn on the connection now gone, which could hold the
dial-back that proves a crash for a second or more (issue 13: a killed node seen dead by one
observer 1.1 s late). So at most two checks of a peer run at once, the second urgent, and
one urgent request per peer and cooldown skips it (the next are ordinary requests).
Requests beyond ``max_pending`` are dropped: suspicions are what a hostile member can send
us, and they must cost a bounded number of checks.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import trio

__all__ = ["DialResult", "Verifier", "dial_back"]

logger = logging.getLogger(__name__)


class DialResult(enum.StrEnum):
    REFUSED = "refused"  # the address answered with a reset: nothing listens there now
    OPEN = "open"  # the address accepted the connection
    UNKNOWN = "unknown"  # no address we may dial, or no answer in time (a vanished host)


async def dial_back(
    address: tuple[str, int] | None, timeout: float, hold: float = 0.0
) -> DialResult:
    """One plain TCP connect to ``address`` (host, port) within ``timeout``. A connection
    made is then kept up to ``hold`` seconds, in case it is reset: a killed process's
    kernel resets our old connection before it closes its listening socket, so a dial-back
    in between completes from the listener's accept queue, and that queue is reset when
    the listener closes. A live py-libp2p listener that drops a connection closes it (we
    read EOF) and writes its multistream header first anyway. What else can reset it: a
    proxy in front of the peer, another process of the peer's host bound to its port, or
    the peer's kernel with ``tcp_abort_on_overflow`` set and its accept queue full (off by
    default, and to be left off: README, "Killed process")."""
    if address is None:
        return DialResult.UNKNOWN
    host, port = address
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
    except (ValueError, OSError):  # not an IP address, no such family, out of descriptors
        return DialResult.UNKNOWN
    with sock:
        connected = False
        with trio.move_on_after(timeout):
            try:
                await sock.connect((host, port))
            except (ConnectionRefusedError, ConnectionResetError):
                return DialResult.REFUSED
            except OSError:
                return DialResult.UNKNOWN
            connected = True
        if not connected:
            return DialResult.UNKNOWN
        # Outside the connect's timeout: a connect that took most of it still gets its hold.
        with trio.move_on_after(hold):
            try:
                await sock.recv(1)  # data or EOF: something listened there and answered
            except ConnectionResetError:
                return DialResult.REFUSED
            except OSError:  # the link broke after the connect: says nothing either way
                return DialResult.UNKNOWN
        return DialResult.OPEN


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
        self._urgent: set[str] = set()  # pending peers whose request was urgent
        self._last: OrderedDict[str, float] = OrderedDict()  # peer -> when its check ended
        self._busy: dict[str, int] = {}  # peer -> checks of it under way (1, or 2 if urgent)
        # peer -> when an urgent check of it last started: one a cooldown skips the cooldown,
        # more are ordinary requests (a peer churning its connections, or many Sybils doing
        # so, must not buy a check each time and hold the slots honest crashes need).
        self._urgent_started: OrderedDict[str, float] = OrderedDict()
        self._wake = trio.Event()

    def request(self, peer: str, *, urgent: bool = False) -> bool:
        """Ask for a check of ``peer``: at once, or once the cooldown since its last
        check has passed (news that came in between, such as a crash right after a
        check, must not go unchecked). ``urgent``: at once whatever the cooldown, for
        news that only the kernel gives (our last connection to it closed: the ping
        we may have just sent it says nothing about a dial). False if it was already
        pending (an urgent request still moves it to the front) or dropped because
        too many are."""
        now = trio.current_time()
        if urgent and now - self._urgent_started.get(peer, -math.inf) < self.cooldown:
            urgent = False
        due = -math.inf if urgent else self._last.get(peer, -math.inf) + self.cooldown
        if urgent and (peer in self._pending or len(self._pending) < self.max_pending):
            self._urgent.add(peer)
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
        ``max_concurrent`` at once and one at a time per peer; each is cut off after
        ``timeout``."""
        slots = trio.Semaphore(self.max_concurrent)
        async with trio.open_nursery() as nursery:
            while True:
                # The slot first, then the choice: a request that comes in while we wait
                # for a slot (an urgent one) is chosen on its merits.
                await slots.acquire()
                while True:
                    self._wake = trio.Event()
                    ready = [item for item in self._pending.items() if self._may_start(item[0])]
                    if not ready:
                        await self._wake.wait()
                        continue
                    peer, due = min(ready, key=lambda item: item[1])
                    if due <= trio.current_time():
                        break
                    with trio.move_on_at(due):
                        await self._wake.wait()
                del self._pending[peer]
                if peer in self._urgent:
                    self._urgent.discard(peer)
                    self._note_urgent(peer)
                self._busy[peer] = self._busy.get(peer, 0) + 1
                nursery.start_soon(self._check, peer, verify, slots)

    def _note_urgent(self, peer: str) -> None:
        now = trio.current_time()
        self._urgent_started[peer] = now
        self._urgent_started.move_to_end(peer)
        # Older than a cooldown decides nothing: bounded by what one cooldown can start.
        while self._urgent_started:
            oldest, when = next(iter(self._urgent_started.items()))
            if now - when < self.cooldown:
                break
            del self._urgent_started[oldest]

    def _may_start(self, peer: str) -> bool:
        """Nothing of ``peer`` under way, or one check and this request is urgent."""
        running = self._busy.get(peer, 0)
        return running == 0 or (running == 1 and peer in self._urgent)

    def _remember(self, peer: str) -> None:
        now = trio.current_time()
        self._last[peer] = now
        self._last.move_to_end(peer)
        # Entries older than the cooldown decide nothing: drop them, so the table holds
        # at most what one cooldown's checks can add.
        while self._last:
            oldest, when = next(iter(self._last.items()))
            if now - when < self.cooldown or oldest == peer:
                break
            del self._last[oldest]

    async def _check(self, peer: str, verify: Verify, slots: trio.Semaphore) -> None:
        try:
            with trio.move_on_after(self.timeout):
                await verify(peer)
        except Exception:  # one failed check must not end the others
            logger.exception("check of %s failed", peer)
        finally:
            # The cooldown runs from the end of a check: a slow one (a dial that times
            # out) must not let the next start at once and take every slot.
            if self._busy.get(peer, 0) > 1:
                self._busy[peer] -= 1
            else:
                self._busy.pop(peer, None)
            self._remember(peer)
            slots.release()
            self._wake.set()
