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

    def __init__(self) -> None:
        self.dialled: list[str] = []

    async def connect(self, addr: str, *, retry_now: bool = False) -> None:
        from adapters.libp2p_host import P2PError

        self.dialled.append(addr)
        await trio.lowlevel.checkpoint()
        raise P2PError(f"connection refused: {addr}")


def _service(**tuning: float) -> GossipService:
    manager = CheckManager(node_id=SELF, version="t")
    return GossipService(
        StandIn(),  # type: ignore[arg-type]
        manager,
        devnet(),
        registry=CollectorRegistry(),
        tuning=GossipTuning(**{"meet_burst": 100.0, **tuning}),  # type: ignore[arg-type]
    )


def _hear(service: GossipService, peer: str, start_ms: int = 1_000, host: str = "") -> None:
    host = host or f"10.0.0.{sum(peer.encode()) % 250}"
    digest = HealthDigest(
        node_id=peer,
        start_time_ms=start_ms,
        seq=1,
        sent_at_ms=start_ms + 1,
        p2p_addrs=(f"/ip4/{host}/tcp/9000/p2p/{peer}",),
    )
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


async def test_a_member_is_met_once() -> None:
    service = _service(meet_links=8)
    _hear(service, "P1")
    assert service._meets_due() == ["P1"]
    # Restarted: if we met it, the lost connection is redialled; if the meeting failed, a
    # new life of the same identity must not buy another dial of us.
    _hear(service, "P1", start_ms=5_000)
    assert service._meets_due() == []


async def test_a_member_without_an_address_of_its_own_is_not_met() -> None:
    service = _service(meet_links=8)
    digest = HealthDigest(
        node_id="P1", start_time_ms=1, seq=1, sent_at_ms=2, p2p_addrs=("/ip4/10.0.0.9/tcp/1",)
    )
    service._handle(service.view.on_digest(digest, trio.current_time()), "P1")
    assert service._meets_due() == []


async def test_a_host_where_meetings_fail_is_left_alone_for_a_while(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Minted identities all claiming a third party's host: each failed meeting counts
    # against that host, and after three it is not dialled again within the window.
    service = _service(meet_links=32, meet_host_failures=3, meet_host_window=60.0)
    for i in range(6):
        _hear(service, f"P{i}", host="192.0.2.7")
    _hear(service, "Q1", host="10.0.0.1")
    due = service._meets_due()
    assert due == ["P0", "P1", "P2", "P3", "P4", "P5", "Q1"]
    for _ in due[:3]:
        service._meet_failed("192.0.2.7")
    for i in range(6, 9):
        _hear(service, f"P{i}", host="192.0.2.7")
    _hear(service, "Q2", host="10.0.0.1")
    assert service._meets_due() == ["Q2"]
    await trio.sleep(61.0)
    _hear(service, "P9", host="192.0.2.7")
    assert service._meets_due() == ["P9"]


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


async def test_a_failed_meeting_dials_once_and_counts_against_its_host() -> None:
    service = _service(meet_links=8)
    node: StandIn = service._node  # type: ignore[assignment]
    digest = HealthDigest(
        node_id="P1",
        start_time_ms=1,
        seq=1,
        sent_at_ms=2,
        p2p_addrs=tuple(f"/ip4/192.0.2.{i}/tcp/9000/p2p/P1" for i in range(1, 9)),
    )
    service._handle(service.view.on_digest(digest, trio.current_time()), "P1")
    assert service._meets_due() == ["P1"]
    await service._meet("P1")
    assert node.dialled == ["/ip4/192.0.2.1/tcp/9000/p2p/P1"]  # the first address only
    assert list(service._meet_failures) == ["192.0.2.1"]
