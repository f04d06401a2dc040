"""Our links to members: the lost redialled, the new met, the dead dropped.

Lost links. A peer whose last connection closed is redialled at its advertised address
(``/p2p/<its id>`` only) with doubling backoff until it is back, has left, or is forgotten.
Without it a peer whose connection was cut (a partition, a ping abort) stays cut off for
good: nothing else dials.

New members. Each member heard of is met (dialled) once a life while we link fewer than
``meet_links`` members; which, when and where is ``adapters.meetings``'s bookkeeping, the
dials and their slots are here.

Dead links. A link to a member our view found dead while the link looked open is closed
(``drop_dead_link``). A frozen process or a partition leaves TCP connections open and
silent; after a heal their retransmissions wait out an RTO doubled all through the cut
(seconds), and nothing else dials: views agreed again only 12 s after a 3 | 3 heal (make
bench, 2026-12-02). Closed, the member is redialled with fresh connections every
redial_max, and pulled from as soon as one connects. The close waits ``dead_link_grace``
seconds and happens only if the member is still dead then: in a 30-node devnet's
suspicion storm (2026-12-03) live members declared dead by mistake lost their links to
every observer at once, took each closed link as evidence against the observer, suspected
20 live members in three seconds and redialled them all, which fed the storm. A mistake is
refuted within seconds; a partition lasts longer than that.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

import trio

from adapters.gossip_tuning import GossipTuning, meet_limits
from adapters.meetings import Candidate, Meeting, Meetings, crowd
from mesh.cluster_view import ClusterView
from mesh.messages import MemberState
from mesh.wake_grid import sleep_to_grid

__all__ = ["Dialer", "LinkKeeper"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")


class Dialer(Protocol):
    """What the keeper needs of the node (``P2PNode`` has it)."""

    async def connect(self, addr: str, *, retry_now: bool = ...) -> object: ...

    async def drop_peer(self, peer: str, *, timeout: float = ...) -> None: ...


@dataclass(slots=True)
class _Redial:
    next_at: float
    delay: float


class LinkKeeper:
    """Redials, meetings and dropped links for one node; ``run`` is the loop that dials.

    ``connected`` holds the peers we are connected to (the service keeps it), ``left``
    says we have left the cluster, ``start(task, peer)`` runs a task in the service's
    nursery (nothing while it is not running), and ``loop_failed`` counts and logs an
    error caught here."""

    def __init__(
        self,
        dialer: Dialer,
        view: ClusterView,
        tuning: GossipTuning,
        self_id: str,
        *,
        connected: Collection[str],
        left: Callable[[], bool],
        start: Callable[[Callable[[str], Awaitable[None]], str], None],
        loop_failed: Callable[[str, Exception], None],
        clock: Callable[[], float],
    ) -> None:
        self._dialer = dialer
        self._view = view
        self._self_id = self_id
        self._tuning = tuning
        self._connected = connected
        self._left = left
        self._start = start
        self._loop_failed = loop_failed
        self._clock = clock
        self._lost: dict[str, _Redial] = {}
        self._dropping: set[str] = set()  # dead members whose link waits out the grace
        self.meetings = Meetings(
            meet_limits(tuning),
            self_id,
            clock,
        )
        self.meeting_now = 0  # meetings under way; each holds one of meet_slots

    def lost(self, peer: str, now: float) -> None:
        """``peer``'s last connection closed: redial it from ``redial_initial`` on."""
        if not self._left():
            self._lost[peer] = _Redial(
                now + self._tuning.redial_initial, self._tuning.redial_initial
            )

    def back(self, peer: str) -> None:
        """A connection to ``peer`` opened: no more redials."""
        self._lost.pop(peer, None)

    def offer_meeting(self, peer: str) -> None:
        """``peer`` joined or restarted in our view: meet it, in its turn of the spread
        if it is a newcomer every member meets (``adapters.meetings.crowd``)."""
        self.meetings.offer(peer, crowd(self._view, self._self_id, peer))

    def drop_dead_link(self, peer: str) -> None:
        """Close our link to ``peer``, a member our view found dead, if it is still dead
        ``dead_link_grace`` seconds later (module docstring)."""
        if not self._left() and peer not in self._dropping:
            self._dropping.add(peer)
            self._start(self._drop_if_still_dead, peer)

    async def _drop_if_still_dead(self, peer: str) -> None:
        try:
            await trio.sleep(self._tuning.dead_link_grace)
            member = self._view.member(peer)
            if self._left() or member is None or member.state is not MemberState.DEAD:
                return
            if peer in self._connected:
                await self._dialer.drop_peer(peer)
        except Exception as exc:  # a failed close must not end the service
            self._loop_failed("redial", exc)
        finally:
            self._dropping.discard(peer)

    async def run(self) -> None:
        # Concurrent: one at a time, a partition's unreachable peers (5 s dial timeouts
        # each) kept the reachable ones waiting.
        slots = trio.Semaphore(self._tuning.max_concurrent_redials)
        redialling: set[str] = set()

        async def redial(peer: str) -> None:
            try:
                async with slots:
                    await self._redial(peer)
            except Exception as exc:  # a failed redial must not end the service
                self._loop_failed("redial", exc)
            finally:
                redialling.discard(peer)

        async with trio.open_nursery() as nursery:
            while True:
                await sleep_to_grid(self._tuning.redial_check)  # mesh/wake_grid.py
                try:
                    backlog = 4 * self._tuning.max_concurrent_redials
                    for peer in self.redials_due(self._clock()):
                        if peer not in redialling and len(redialling) < backlog:
                            redialling.add(peer)
                            nursery.start_soon(redial, peer)
                    for meeting in self.meetings_due():
                        nursery.start_soon(self.meet, meeting)
                except Exception as exc:  # nothing a peer's state caused may end the loop
                    self._loop_failed("redial", exc)

    def redials_due(self, now: float) -> list[str]:
        if self._left():
            self._lost.clear()
        due = []
        for peer, state in list(self._lost.items()):
            member = self._view.member(peer)
            # Gone on purpose, forgotten, or back: stop trying.
            if member is None or member.state is MemberState.LEFT or peer in self._connected:
                del self._lost[peer]
            elif now >= state.next_at:
                state.delay = min(state.delay * 2, self._tuning.redial_max)
                state.next_at = now + state.delay
                due.append(peer)
        return due

    def meetings_due(self) -> list[Meeting]:
        if self._left():
            self.meetings.clear()
            return []
        slots = self._tuning.meet_slots - self.meeting_now
        if slots <= 0 or not len(self.meetings):
            return []  # four times a second: no view lookups unless one can start

        def candidate(peer: str) -> Candidate | None:
            member = self._view.member(peer)
            if member is None:
                return None
            alive = member.state is MemberState.ALIVE
            return Candidate(alive, member.firsthand, member.start_time, member.p2p_addrs)

        due = self.meetings.due(
            # Members only: strangers' connections must not use up the room.
            linked_members=sum(1 for p in self._connected if self._view.knows(p)),
            limit=slots,
            candidate=candidate,
            linked=lambda peer: peer in self._connected or peer in self._lost,
        )
        self.meeting_now += len(due)  # each meet gives its slot back
        return due

    async def meet(self, meeting: Meeting) -> None:
        from adapters.p2p_config import P2PError

        ok = False
        try:
            with trio.move_on_after(self._tuning.meet_timeout):
                await self._dialer.connect(meeting.address, retry_now=True)
                ok = True
                logger.debug("met %s at %s", meeting.peer, meeting.address)
        except P2PError as exc:
            logger.debug("meeting %s at %s failed: %s", meeting.peer, meeting.address, exc)
        except Exception as exc:  # a failed meeting must not end the service
            self._loop_failed("redial", exc)
        finally:
            self.meeting_now -= 1
            self.meetings.finished(meeting, ok=ok)

    async def _redial(self, peer: str) -> None:
        from adapters.p2p_config import P2PError

        member = self._view.member(peer)
        if member is None:
            return
        # Only addresses naming the peer itself: a digest must not aim our dials elsewhere.
        for addr in [a for a in member.p2p_addrs if a.endswith(f"/p2p/{peer}")]:
            with trio.move_on_after(self._tuning.redial_timeout):
                try:
                    await self._dialer.connect(addr, retry_now=True)
                except P2PError as exc:
                    logger.debug("redial of %s at %s failed: %s", peer, addr, exc)
                    continue
                logger.info("reconnected to %s at %s", peer, addr)
                return
