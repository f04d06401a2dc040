"""Meetings of one simulated node: ``GossipService._meetings_due`` and ``_meet``.

The scheduling is the adapter's own pure ``adapters.meetings.Meetings`` (which members,
where, how fast, which hosts wait); this module only polls it and carries its dials through
``Cluster.meet``. The adapter polls every ``redial_check`` whether or not anything is
queued; here the poll runs only while something is: the same moments, far fewer events in
a cluster of 1,000.
"""

from __future__ import annotations

import functools

from adapters.gossip_tuning import meet_limits
from adapters.meetings import Candidate, Meeting, Meetings, crowd
from devnet.simulator.events import Timer
from devnet.simulator.kernel import NodeSide
from mesh.messages import MemberState

__all__ = ["MeetingDesk"]


class MeetingDesk:
    def __init__(self, node: NodeSide) -> None:
        self.node = node
        tuning = node.tuning
        self.meetings = Meetings(
            meet_limits(tuning),
            node.peer_id,
            lambda: node.now,
            node.rng,
        )
        self.in_flight = 0
        self.met = 0  # meetings that ended in a connection
        self._timer: Timer | None = None

    def offer(self, peer: str) -> None:
        """A member joined or restarted in our view."""
        self.meetings.offer(peer, crowd(self.node.view, self.node.peer_id, peer))
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and len(self.meetings):
            self._timer = self.node.later(self.node.tuning.redial_check, self._poll)

    def _poll(self) -> None:
        self._timer = None
        node = self.node
        cluster = node.cluster
        slots = node.tuning.meet_slots - self.in_flight
        if slots > 0 and len(self.meetings):
            due = self.meetings.due(
                # Members only: strangers' connections must not use up the room.
                linked_members=sum(
                    1 for p in node.connected if node.view.knows(cluster.peer_id(p))
                ),
                limit=slots,
                candidate=self._candidate,
                linked=lambda peer: cluster.index_of(peer) in node.connected,
            )
            for meeting in due:
                self.in_flight += 1
                cluster.meet(
                    node.index,
                    cluster.index_of(meeting.peer),
                    node.tuning.meet_timeout,
                    functools.partial(self._finished, meeting),
                )
        self._arm()

    def _candidate(self, peer: str) -> Candidate | None:
        member = self.node.view.member(peer)
        if member is None:
            return None
        alive = member.state is MemberState.ALIVE
        return Candidate(alive, member.firsthand, member.start_time, member.p2p_addrs)

    def _finished(self, meeting: Meeting, ok: bool) -> None:
        self.in_flight -= 1
        self.met += ok
        self.meetings.finished(meeting, ok=ok)
