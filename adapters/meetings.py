"""Which members to meet, when, and where (issue 13). Pure bookkeeping; the gossip service
dials.

A node that holds a link of its own to a member can dial it back when its link closes, and
a killed process's kernel refuses the dial: dead within a second, where a node without a
link waits out the suspicion (seconds). So each node dials the members it hears of, once a
life, at an address the member signed for itself. Addresses are the member's own claim,
and members are free to mint in an open cluster, so meeting must not become a way to aim
the cluster's dials at somebody else:

- Only ``/ip4|ip6/<literal>/tcp/<port>/p2p/<the member>``: no DNS name (py-libp2p would
  resolve it and dial every record), no wildcard, multicast or broadcast address. The host
  is the IP in its canonical form (an IPv4-mapped IPv6 address is the IPv4 one), so other
  spellings of one IP count as one host.
- Per host: one meeting at a time, and none for ``host_window`` seconds after
  ``host_failures`` failed there. Members on a blocked host wait in the queue, they are not
  dropped; a meeting that succeeds clears the host's failures.
- Members we heard on the topic ourselves come first: a pulled snapshot can carry hundreds
  of minted members signed by their minter, while the topic is rate-limited per signer.
  The queue is bounded; when full, the oldest offer gives way.
- Of a pair, the side whose id sorts first dials, so a pair is not dialled from both ends.
- A token bucket paces meetings (a node joining 20 that met 18 at once missed pings), and
  only members count against ``links``: strangers' connections cannot use up the room.
- The bucket paces each dialler, not the member dialled: every member that hears of a
  joiner dials it, and a 30-node devnet's newest node took 21 connections (handshakes,
  identify, GossipSub, a pull each) in its first 2 s, missed pings and was suspected by
  all (2026-12-03). So each meeting of a member that started after us waits a random
  time, up to ``spread`` seconds per member of the view and ``spread_max`` in all (minted
  members must not hold meetings back for minutes): the newcomer's inbound meetings
  arrive at about the pace of its own outbound ones, which do not wait.

Everything is bounded: the queue (``queue``), the lives met (``memory``), the hosts
remembered (``memory``).
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mesh.cluster_view import ClusterView
from probes.rate_limit import TokenBucket

__all__ = ["Candidate", "MeetLimits", "Meeting", "Meetings", "crowd", "meeting_address"]


@dataclass(frozen=True, slots=True)
class MeetLimits:
    """GossipTuning's meet_* fields (documented there)."""

    links: int
    rate: float
    burst: float
    queue: int
    memory: int
    host_failures: int
    host_window: float
    spread: float = 0.0  # seconds per member over which a new member's meetings spread
    spread_max: float = 10.0  # the most any meeting waits, however many members


@dataclass(frozen=True, slots=True)
class Meeting:
    peer: str
    address: str
    host: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the view says of a queued member when its turn comes."""

    alive: bool
    firsthand: bool
    start_time: float
    p2p_addrs: tuple[str, ...]


def meeting_address(peer: str, addrs: Iterable[str]) -> tuple[str, str] | None:
    """The first address of ``addrs`` a meeting of ``peer`` may dial, with its host."""
    for addr in addrs:
        parts = addr.split("/")  # ['', 'ip4', ip, 'tcp', port, 'p2p', peer]
        if len(parts) != 7 or parts[0] or parts[1] not in ("ip4", "ip6"):
            continue
        if parts[3] != "tcp" or parts[5] != "p2p" or parts[6] != peer:
            continue
        if not parts[4].isdigit() or not 0 < int(parts[4]) < 65536:
            continue
        host = _canonical_ip(parts[1], parts[2])
        if host is not None:
            return addr, host
    return None


# Bounded: the texts come off the wire. Every call to ``Meetings.due`` reads each queued
# member's addresses again, and ipaddress's parsing was a tenth of a simulated join.
@functools.lru_cache(maxsize=1024)
def _canonical_ip(kind: str, text: str) -> str | None:
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version != (4 if kind == "ip4" else 6):
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return str(ip)


def crowd(view: ClusterView, self_id: str, peer: str) -> int:
    """For :meth:`Meetings.offer`: how many members dial ``peer`` about now. A member that
    started after us is a newcomer that every member meets, so our view's size; one that
    started before us is met by us alone (we are the newcomer), so 0: not held back."""
    member, me = view.member(peer), view.member(self_id)
    newer = member is not None and me is not None and member.start_time > me.start_time
    return view.live_count() if newer else 0


class Meetings:
    def __init__(
        self,
        limits: MeetLimits,
        self_id: str,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.limits = limits
        self.self_id = self_id
        self._clock = clock
        self._rng = rng or random.Random()
        # Insertion-ordered (first heard, first met): peer -> not before this time.
        self._queue: dict[str, float] = {}
        self._met: OrderedDict[str, float] = OrderedDict()  # peer -> start time of the life
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # by host
        self._in_flight: set[str] = set()  # hosts
        self._budget = TokenBucket(limits.rate, limits.burst, clock())

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, peer: str, members: int = 0) -> None:
        """A member joined or restarted in our view. ``members``: how many dial it at
        about the same time (0: it is met at once, in its turn)."""
        if self.limits.links <= 0 or peer <= self.self_id:
            return  # of a pair, the smaller id dials: a smaller one dials us
        if peer in self._queue:
            return
        if len(self._queue) >= self.limits.queue:
            del self._queue[next(iter(self._queue))]
        wait = self._rng.uniform(0.0, min(self.limits.spread_max, self.limits.spread * members))
        self._queue[peer] = self._clock() + wait

    def clear(self) -> None:
        self._queue.clear()

    def due(
        self,
        *,
        linked_members: int,
        limit: int,
        candidate: Callable[[str], Candidate | None],
        linked: Callable[[str], bool],
    ) -> list[Meeting]:
        """Meetings to start now: at most ``limit``, while we link fewer than ``links``
        members, each marked in flight until :meth:`finished`."""
        room = min(limit, self.limits.links - linked_members)
        firsthand: list[tuple[str, Candidate, str, str]] = []
        secondhand: list[tuple[str, Candidate, str, str]] = []
        for peer in list(self._queue):
            seen = candidate(peer)
            target = None if seen is None else meeting_address(peer, seen.p2p_addrs)
            # Gone, not alive, linked already (it dialled us, or it is redialled), this
            # life met already, or nowhere it may be dialled: nothing to do.
            if (
                seen is None
                or target is None
                or not seen.alive
                or linked(peer)
                or self._met.get(peer) == seen.start_time
            ):
                del self._queue[peer]
                continue
            (firsthand if seen.firsthand else secondhand).append((peer, seen, *target))
        due: list[Meeting] = []
        now = self._clock()
        for peer, seen, address, host in firsthand + secondhand:
            if len(due) >= room:
                break
            if now < self._queue[peer] or host in self._in_flight or self._blocked(host):
                continue  # its turn comes when its wait is over and the host is free
            if not self._budget.take(self._clock()):
                break
            del self._queue[peer]
            self._met[peer] = seen.start_time
            self._met.move_to_end(peer)
            if len(self._met) > self.limits.memory:
                self._met.popitem(last=False)
            self._in_flight.add(host)
            due.append(Meeting(peer, address, host))
        return due

    def finished(self, meeting: Meeting, *, ok: bool) -> None:
        self._in_flight.discard(meeting.host)
        if ok:
            self._failures.pop(meeting.host, None)
            return
        failures = self._failures.pop(meeting.host, None) or deque(maxlen=self.limits.host_failures)
        failures.append(self._clock())
        self._failures[meeting.host] = failures  # newest last: the LRU end
        if len(self._failures) > self.limits.memory:
            self._failures.popitem(last=False)

    def _blocked(self, host: str) -> bool:
        failures = self._failures.get(host)
        if failures is None:
            return False
        horizon = self._clock() - self.limits.host_window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return len(failures) >= self.limits.host_failures
