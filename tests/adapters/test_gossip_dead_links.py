"""A link to a member the view found dead is closed (LinkKeeper.drop_dead_link): a
partition or a freeze leaves TCP connections open and silent, and after the heal their
backed-off retransmissions, not our redials, would decide when we hear the member again."""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry

from adapters.gossip import GossipService
from mesh.cluster_config import devnet
from mesh.cluster_transitions import Cause, Transition
from mesh.manager import CheckManager
from mesh.messages import MemberState

SELF, PEER, OTHER = "M0", "P1", "P2"


class StandIn:
    peer_id = SELF
    timeout = 2.0  # the pinger's

    def __init__(self) -> None:
        self.dropped: list[str] = []

    @property
    def pinger(self) -> StandIn:
        return self

    async def drop_peer(self, peer: str, *, timeout: float = 2.0) -> None:
        await trio.lowlevel.checkpoint()
        self.dropped.append(peer)


def _death(peer: str) -> Transition:
    return Transition(peer, 0.0, MemberState.SUSPECT, MemberState.DEAD, Cause.SUSPICION_TIMEOUT)


async def test_a_dead_members_open_link_is_closed_and_no_other() -> None:
    node = StandIn()
    service = GossipService(
        node,  # type: ignore[arg-type]
        CheckManager(node_id=SELF, version="t"),
        devnet(),
        registry=CollectorRegistry(),
    )
    service._connected.update({PEER})
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        service._apply([_death(PEER), _death(OTHER)])  # OTHER: no link of ours
        alive = Transition(PEER, 0.0, MemberState.DEAD, MemberState.ALIVE, Cause.DIGEST)
        service._apply([alive])
    assert node.dropped == [PEER]

    service._left = True  # leaving: our links go anyway, nothing to start
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        service._apply([_death(PEER)])
    assert node.dropped == [PEER]
