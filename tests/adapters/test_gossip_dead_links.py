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
from mesh.messages import HealthDigest, MemberState

SELF, PEER, OTHER = "M0", "P1", "P2"


class StandIn:
    peer_id = SELF
    timeout = 2.0  # the pinger's
    patient_factor = 2.0  # the pinger's, for a peer that says it is starved

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


def _service(node: StandIn) -> GossipService:
    """A service with PEER and OTHER in its view and a link to PEER only."""
    service = GossipService(
        node,  # type: ignore[arg-type]
        CheckManager(node_id=SELF, version="t"),
        devnet(),
        registry=CollectorRegistry(),
    )
    now = trio.current_time()
    for peer in (PEER, OTHER):
        digest = HealthDigest(node_id=peer, start_time_ms=1_000, seq=1, sent_at_ms=1_001)
        service.view.on_digest(digest, now)
    service._connected.add(PEER)
    return service


async def _kill(service: GossipService, peer: str) -> None:
    """Make ``peer`` dead in the view (a refused dial-back), as the service hears it."""
    service._handle(service.view.on_refused(peer, trio.current_time()), peer)
    await trio.sleep(devnet().refused_grace)
    service._apply(service.view.tick(trio.current_time()))


async def test_a_link_to_a_member_still_dead_after_the_grace_is_closed_and_no_other(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = StandIn()
    service = _service(node)
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        await _kill(service, PEER)
        await _kill(service, OTHER)  # no link of ours
        service._apply([_death(PEER)])  # told twice: one wait
        assert service.view.member(PEER).state is MemberState.DEAD  # type: ignore[union-attr]
        await trio.sleep(4.8)  # 4.9 s after PEER's death
        assert node.dropped == []  # a mistaken death is refuted within seconds
        await trio.sleep(0.2)
        assert node.dropped == [PEER]

    service._left = True  # leaving: our links go anyway, nothing to start
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        service._apply([_death(PEER)])
        await trio.sleep(10.0)
    assert node.dropped == [PEER]


async def test_a_member_that_speaks_again_within_the_grace_keeps_its_link(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The storm this guards against: every observer closing its link to a live member
    # declared dead by mistake, which then suspects all of them (2026-12-03).
    node = StandIn()
    service = _service(node)
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        await _kill(service, PEER)
        assert service.view.member(PEER).state is MemberState.DEAD  # type: ignore[union-attr]
        await trio.sleep(2.0)
        digest = HealthDigest(node_id=PEER, start_time_ms=1_000, seq=2, sent_at_ms=1_002)
        service._handle(service.view.on_digest(digest, trio.current_time()), PEER)
        assert service.view.member(PEER).state is MemberState.ALIVE  # type: ignore[union-attr]
        await trio.sleep(10.0)
    assert node.dropped == []


async def test_a_link_that_closed_during_the_grace_is_not_closed_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = StandIn()
    service = _service(node)
    async with trio.open_nursery() as nursery:
        service._nursery = nursery
        await _kill(service, PEER)
        service._connected.discard(PEER)  # its kernel closed it, as a crash's does
        await trio.sleep(10.0)
    assert node.dropped == []


def test_bad_grace_and_spread_settings_are_refused() -> None:
    import math

    import pytest

    from adapters.gossip_tuning import GossipTuning

    for name in ("dead_link_grace", "meet_spread", "meet_spread_max"):
        for value in (-1.0, math.nan, math.inf):
            with pytest.raises(ValueError, match=name):
                GossipTuning(**{name: value})  # type: ignore[arg-type]
