"""Which members GossipService meets (``_queue_meet``/``_meets_due``, issue 13): new
members once a life, in the order heard, up to the link cap, never ourselves, and a bounded
queue. Pure bookkeeping with a stand-in node; tests/sim/test_meeting.py dials for real."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from adapters.gossip import GossipService, GossipTuning
from mesh.cluster_config import devnet
from mesh.digest import HealthDigest
from mesh.manager import CheckManager

SELF = "M0"  # peers named P... sort after it, so we are the side that dials


class StandIn:
    """All that building the service and queueing a check reads of its P2PNode."""

    peer_id = SELF
    timeout = 2.0  # the pinger's

    @property
    def pinger(self) -> StandIn:
        return self


def _service(**tuning: float) -> GossipService:
    manager = CheckManager(node_id=SELF, version="t")
    return GossipService(
        StandIn(),  # type: ignore[arg-type]
        manager,
        devnet(),
        registry=CollectorRegistry(),
        tuning=GossipTuning(**{"meet_burst": 100.0, **tuning}),  # type: ignore[arg-type]
    )


def _hear(service: GossipService, peer: str, start_ms: int = 1_000) -> None:
    digest = HealthDigest(node_id=peer, start_time_ms=start_ms, seq=1, sent_at_ms=start_ms + 1)
    service._handle(service.view.on_digest(digest, trio.current_time()), peer)


async def test_new_members_are_met_in_the_order_heard_up_to_the_link_cap() -> None:
    service = _service(meet_links=3)
    for peer in ("P1", "P2", "P3", "P4", "P5"):
        _hear(service, peer)
    service._connected.add("P9")  # one link already: room for two
    assert service._meets_due() == ["P1", "P2"]
    service._connected.update({"P1", "P2"})
    assert service._meets_due() == []  # at the cap: the rest wait
    service._connected.discard("P9")
    assert service._meets_due() == ["P3"]


async def test_a_member_is_met_once_a_life() -> None:
    service = _service(meet_links=8)
    _hear(service, "P1")
    assert service._meets_due() == ["P1"]
    _hear(service, "P1", start_ms=1_000)  # the same life again: nothing
    assert service._meets_due() == []
    _hear(service, "P1", start_ms=5_000)  # restarted: a new life to meet
    assert service._meets_due() == ["P1"]


async def test_linked_lost_and_suspected_members_are_not_met() -> None:
    service = _service(meet_links=8)
    for peer in ("P1", "P2", "P3", "P4"):
        _hear(service, peer)
    service._connected.add("P1")  # it dialled us meanwhile
    service._lost["P2"] = object()  # type: ignore[assignment]  # redialled instead
    service._handle(service.view.on_refused("P3", trio.current_time()), "P3")
    assert service._meets_due() == ["P4"]


@pytest.mark.parametrize("links", [0, 8])
async def test_ourselves_never_and_nobody_with_meeting_off(links: int) -> None:
    service = _service(meet_links=links)
    service._queue_meet(SELF)
    _hear(service, "P1")
    assert service._meets_due() == ([] if links == 0 else ["P1"])


async def test_the_queue_of_members_to_meet_is_bounded() -> None:
    service = _service(meet_links=1, meet_queue=4)
    for i in range(50):  # a flood of minted identities
        _hear(service, f"P{i:02d}")
    assert len(service._to_meet) == 4
    assert service._meets_due() == ["P00"]


async def test_of_a_pair_the_smaller_id_dials() -> None:
    service = _service(meet_links=8)
    _hear(service, "A1")  # sorts before us: it dials us
    _hear(service, "P1")
    assert service._meets_due() == ["P1"]


async def test_meetings_are_paced(autojump_clock: trio.testing.MockClock) -> None:
    service = _service(meet_links=32, meet_rate=2.0, meet_burst=4.0)
    for i in range(10):
        _hear(service, f"P{i}")
    assert service._meets_due() == ["P0", "P1", "P2", "P3"]  # the burst
    assert service._meets_due() == []
    await trio.sleep(1.0)
    assert service._meets_due() == ["P4", "P5"]  # two a second, in the order heard
