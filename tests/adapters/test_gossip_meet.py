"""Which members a node meets (adapters/meetings.py, issue 13): new members once a life, in
the order heard, firsthand first, up to the link cap, paced, never ourselves, never at an
address a stranger could aim at somebody else, and bounded. Pure bookkeeping, then the
gossip service's side with a stand-in node; tests/sim/test_meeting.py dials for real."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from adapters.gossip import GossipService
from adapters.gossip_tuning import GossipTuning
from adapters.meetings import Candidate, Meeting, Meetings, MeetLimits, meeting_address
from mesh.cluster_config import devnet
from mesh.manager import CheckManager
from mesh.messages import HealthDigest

SELF = "M0"  # peers named P... sort after it, so we are the side that dials
LIMITS = MeetLimits(
    links=32, rate=100.0, burst=100.0, queue=256, memory=4096, host_failures=3, host_window=60.0
)


def _addr(peer: str, host: str = "") -> str:
    host = host or f"10.0.0.{sum(peer.encode()) % 250}"
    return f"/ip4/{host}/tcp/9000/p2p/{peer}"


class View:
    """The candidates the view would report: alive, firsthand, one address each."""

    def __init__(self) -> None:
        self.members: dict[str, Candidate] = {}
        self.linked: set[str] = set()
        self.in_flight: list[Meeting] = []

    def hear(
        self,
        meetings: Meetings,
        peer: str,
        *,
        addr: str = "",
        start: float = 1.0,
        firsthand: bool = True,
    ) -> None:
        self.members[peer] = Candidate(True, firsthand, start, (addr or _addr(peer),))
        meetings.offer(peer)

    def due(self, meetings: Meetings, limit: int = 100, links: int = 0) -> list[str]:
        found = meetings.due(
            linked_members=links,
            limit=limit,
            candidate=self.members.get,
            linked=self.linked.__contains__,
        )
        self.in_flight = found
        return [m.peer for m in found]

    def finish(self, meetings: Meetings, *, ok: bool) -> None:
        for meeting in self.in_flight:
            meetings.finished(meeting, ok=ok)


def _meetings(**changes: float) -> Meetings:
    from dataclasses import replace

    return Meetings(replace(LIMITS, **changes), SELF, trio.current_time)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("addr", "host"),
    [
        ("/ip4/10.1.2.3/tcp/9000/p2p/P1", "10.1.2.3"),
        ("/ip4/127.0.0.1/tcp/41000/p2p/P1", "127.0.0.1"),  # a devnet
        ("/ip6/2001:DB8::7/tcp/9000/p2p/P1", "2001:db8::7"),
        ("/ip6/2001:0db8:0::7/tcp/9000/p2p/P1", "2001:db8::7"),  # one host, two spellings
        ("/ip6/::ffff:10.1.2.3/tcp/9000/p2p/P1", "10.1.2.3"),  # an IPv4-mapped address
    ],
)
def test_a_meeting_goes_to_a_literal_ip_in_its_canonical_form(addr: str, host: str) -> None:
    assert meeting_address("P1", [addr]) == (addr, host)


@pytest.mark.parametrize(
    "addr",
    [
        "/dns4/victims.example/tcp/25/p2p/P1",  # py-libp2p would dial every record
        "/dnsaddr/victims.example/p2p/P1",
        "/ip4/0.0.0.0/tcp/9000/p2p/P1",
        "/ip4/224.0.0.1/tcp/9000/p2p/P1",
        "/ip4/255.255.255.255/tcp/9000/p2p/P1",
        "/ip4/10.0.0.1/tcp/9000/p2p/P2",  # names another peer
        "/ip4/10.0.0.1/tcp/0/p2p/P1",
        "/ip4/10.0.0.1/tcp/70000/p2p/P1",
        "/ip4/2001:db8::1/tcp/9000/p2p/P1",
        "/ip4/10.0.0.1/udp/9000/quic/p2p/P1",
        "/ip4/10.0.0.1/tcp/9000",
    ],
)
def test_no_meeting_where_a_stranger_could_aim_it(addr: str) -> None:
    assert meeting_address("P1", [addr]) is None


# --------------------------------------------------------------------------- order


async def test_new_members_are_met_in_the_order_heard_up_to_the_link_cap() -> None:
    meetings, view = _meetings(links=3), View()
    for peer in ("P1", "P2", "P3", "P4", "P5"):
        view.hear(meetings, peer)
    assert view.due(meetings, links=1) == ["P1", "P2"]  # one member linked: room for two
    assert view.due(meetings, links=3) == []  # at the cap: the rest wait
    assert view.due(meetings, links=2) == ["P3"]


async def test_no_more_at_once_than_the_caller_has_slots_for() -> None:
    meetings, view = _meetings(), View()
    for i in range(6):
        view.hear(meetings, f"P{i}")
    assert view.due(meetings, limit=2) == ["P0", "P1"]


async def test_members_heard_on_the_topic_come_before_those_of_a_snapshot() -> None:
    meetings, view = _meetings(), View()
    for i in range(5):  # a pulled snapshot full of minted members
        view.hear(meetings, f"P{i}", firsthand=False)
    view.hear(meetings, "Q1")
    assert view.due(meetings, limit=2) == ["Q1", "P0"]


async def test_of_a_pair_the_smaller_id_dials() -> None:
    meetings, view = _meetings(), View()
    view.hear(meetings, "A1")  # sorts before us: it dials us
    view.hear(meetings, "P1")
    assert view.due(meetings) == ["P1"]


@pytest.mark.parametrize("links", [0, 8])
async def test_ourselves_never_and_nobody_with_meeting_off(links: int) -> None:
    meetings, view = _meetings(links=links), View()
    view.hear(meetings, SELF)
    view.hear(meetings, "P1")
    assert view.due(meetings, links=0) == ([] if links == 0 else ["P1"])


async def test_a_member_is_met_once_a_life() -> None:
    meetings, view = _meetings(), View()
    view.hear(meetings, "P1")
    assert view.due(meetings) == ["P1"]
    view.finish(meetings, ok=False)
    view.hear(meetings, "P1")  # the same life offered again: nothing
    assert view.due(meetings) == []
    view.hear(meetings, "P1", start=2.0)  # restarted, or forgotten and back: met again
    assert view.due(meetings) == ["P1"]


async def test_linked_and_dead_members_are_dropped_from_the_queue() -> None:
    meetings, view = _meetings(), View()
    for peer in ("P1", "P2", "P3"):
        view.hear(meetings, peer)
    view.linked.add("P1")  # it dialled us meanwhile, or it is being redialled
    view.members["P2"] = Candidate(False, True, 1.0, (_addr("P2"),))
    assert view.due(meetings) == ["P3"]
    assert len(meetings) == 0


async def test_the_queue_is_bounded_and_the_oldest_offer_gives_way() -> None:
    meetings, view = _meetings(queue=4), View()
    for i in range(50):  # a flood of minted identities
        view.hear(meetings, f"P{i:02d}")
    view.hear(meetings, "Q1")
    assert len(meetings) == 4
    assert view.due(meetings) == ["P47", "P48", "P49", "Q1"]


async def test_meetings_are_paced(autojump_clock: trio.testing.MockClock) -> None:
    meetings, view = _meetings(rate=2.0, burst=4.0), View()
    for i in range(10):
        view.hear(meetings, f"P{i}")
    assert view.due(meetings) == ["P0", "P1", "P2", "P3"]  # the burst
    assert view.due(meetings) == []
    await trio.sleep(1.0)
    assert view.due(meetings) == ["P4", "P5"]  # two a second, in the order heard


async def test_a_joiners_meetings_spread_over_a_time_that_grows_with_the_view(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 30 members each dialling the newest node within 2 s overwhelmed it (2026-12-03):
    # each member's meeting of a joiner waits up to 0.25 s per member of its view.
    import random
    from dataclasses import replace

    limits = replace(LIMITS, spread=0.25)
    waits: list[float] = []
    for seed in range(200):
        meetings = Meetings(limits, SELF, trio.current_time, random.Random(seed))
        view = View()
        view.members["P1"] = Candidate(True, True, 1.0, (_addr("P1"),))
        meetings.offer("P1", members=30)
        began = trio.current_time()
        for _poll in range(100):  # the link keeper polls its meetings, as here
            if view.due(meetings):
                break
            await trio.sleep(0.1)
        waits.append(trio.current_time() - began)
    assert max(waits) <= 7.5 + 0.1  # 0.25 s times 30 members, one poll late at most
    assert min(waits) < 1.0 and max(waits) > 6.5  # spread over the whole window
    assert 2.5 < sum(waits) / len(waits) < 5.0  # uniform: about 3.75 s on average


# --------------------------------------------------------------------------- hosts


async def test_one_meeting_at_a_time_per_host() -> None:
    meetings, view = _meetings(), View()
    for i in range(10):
        view.hear(meetings, f"P{i}", addr=_addr(f"P{i}", "192.0.2.7"))
    assert view.due(meetings) == ["P0"]
    view.finish(meetings, ok=True)
    assert view.due(meetings) == ["P1"]


async def test_a_host_where_meetings_fail_waits_out_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Minted identities all claiming a third party's host (in every spelling): after three
    # failures there it is not dialled again within the window, and the members on it wait
    # in the queue rather than being dropped.
    meetings, view = _meetings(), View()
    spellings = ["2001:db8::7", "2001:DB8::7", "2001:0db8:0::7", "2001:db8:0:0::7"]
    for i in range(8):
        peer = f"P{i}"
        view.hear(meetings, peer, addr=f"/ip6/{spellings[i % 4]}/tcp/25/p2p/{peer}")
    view.hear(meetings, "Q1", addr=_addr("Q1", "10.0.0.1"))
    assert view.due(meetings) == ["P0", "Q1"]
    view.finish(meetings, ok=False)
    for peer in ("P1", "P2"):  # one at a time on the host, whatever the spelling
        assert view.due(meetings) == [peer]
        view.finish(meetings, ok=False)
    assert view.due(meetings) == []
    assert len(meetings) == 5  # P3..P7 wait
    await trio.sleep(61.0)
    assert view.due(meetings) == ["P3"]


async def test_a_meeting_that_succeeds_clears_its_hosts_failures() -> None:
    meetings, view = _meetings(), View()
    for i in range(5):
        view.hear(meetings, f"P{i}", addr=_addr(f"P{i}", "127.0.0.1"))
    for _ in range(2):
        view.due(meetings)
        view.finish(meetings, ok=False)  # two killed members on a shared host
    view.due(meetings)
    view.finish(meetings, ok=True)
    for _ in range(2):
        view.due(meetings)
        view.finish(meetings, ok=False)
    assert view.due(meetings) == []  # blocked only now: three failures in a row


# --------------------------------------------------------------------------- the service


class StandIn:
    """All that building the service, queueing a check and meeting read of a P2PNode."""

    peer_id = SELF
    timeout = 2.0  # the pinger's
    patient_factor = 2.0  # the pinger's, for a peer that says it is starved

    def __init__(self) -> None:
        self.dialled: list[str] = []

    @property
    def pinger(self) -> StandIn:
        return self

    async def connect(self, addr: str, *, retry_now: bool = False) -> None:
        from adapters.p2p_config import P2PError

        self.dialled.append(addr)
        await trio.lowlevel.checkpoint()
        raise P2PError(f"connection refused: {addr}")


def _service(**tuning: float) -> GossipService:
    return GossipService(
        StandIn(),  # type: ignore[arg-type]
        CheckManager(node_id=SELF, version="t"),
        devnet(),
        registry=CollectorRegistry(),
        tuning=GossipTuning(
            **{"meet_burst": 100.0, "meet_rate": 100.0, "meet_spread": 0.0, **tuning}  # type: ignore[arg-type]
        ),
    )


def _hear(service: GossipService, peer: str, *addrs: str, start: int = 1_000) -> None:
    digest = HealthDigest(
        node_id=peer,
        start_time_ms=start,
        seq=1,
        sent_at_ms=1_001,
        p2p_addrs=addrs or (_addr(peer),),
    )
    service._handle(service.view.on_digest(digest, trio.current_time()), peer)


async def test_strangers_connections_do_not_use_up_the_room() -> None:
    service = _service(meet_links=2, meet_slots=8)
    service._connected.update({f"Z{i}" for i in range(40)})  # minted peers, not members
    _hear(service, "P1")
    _hear(service, "P2")
    _hear(service, "P3")
    service._connected.add("P1")
    assert [m.peer for m in service._links.meetings_due()] == ["P2"]  # one member linked


async def test_the_service_spreads_a_joiners_meeting_by_the_size_of_its_view(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = _service(meet_spread=10.0, meet_spread_max=100.0, meet_slots=8)
    service.meetings._rng.uniform = lambda low, high: high  # type: ignore[method-assign]
    _hear(service, SELF, start=500)  # we started before them: they are newcomers
    for peer in ("P1", "P2", "P3"):
        _hear(service, peer)
    # Offered when the view held us and 1, 2, 3 of them: waits of 20, 30 and 40 s.
    await trio.sleep(19.5)
    assert service._links.meetings_due() == []
    await trio.sleep(0.5)
    assert [m.peer for m in service._links.meetings_due()] == ["P1"]
    await trio.sleep(9.5)
    assert service._links.meetings_due() == []
    await trio.sleep(0.5)
    assert [m.peer for m in service._links.meetings_due()] == ["P2"]
    await trio.sleep(10.0)
    assert [m.peer for m in service._links.meetings_due()] == ["P3"]


async def test_members_older_than_us_are_met_at_once_and_no_wait_is_longer_than_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # We are the newcomer: our own meetings are not held back. And minted members that
    # swell the view cannot make a newcomer's meeting wait for minutes.
    service = _service(meet_spread=10.0, meet_spread_max=15.0, meet_slots=8)
    service.meetings._rng.uniform = lambda low, high: high  # type: ignore[method-assign]
    _hear(service, SELF, start=500)
    _hear(service, "P0", start=100)
    assert [m.peer for m in service._links.meetings_due()] == ["P0"]
    _hear(service, "P1")  # three members: 30 s, capped at 15
    await trio.sleep(14.5)
    assert service._links.meetings_due() == []
    await trio.sleep(0.5)
    assert [m.peer for m in service._links.meetings_due()] == ["P1"]


async def test_a_failed_meeting_dials_once_and_counts_against_its_host() -> None:
    service = _service(meet_slots=8)
    node: StandIn = service._node  # type: ignore[assignment]
    _hear(service, "P1", *(f"/ip4/192.0.2.{i}/tcp/9000/p2p/P1" for i in range(1, 9)))
    [meeting] = service._links.meetings_due()
    await service._links.meet(meeting)
    assert node.dialled == ["/ip4/192.0.2.1/tcp/9000/p2p/P1"]  # the first address only
    assert list(service.meetings._failures) == ["192.0.2.1"]
    assert service._links.meeting_now == 0


async def test_meetings_have_slots_of_their_own(autojump_clock: trio.testing.MockClock) -> None:
    # Addresses that swallow SYNs hold the meeting slots for meet_timeout, not the redials'.
    service = _service(meet_slots=2, meet_timeout=2.0)

    async def never(addr: str, *, retry_now: bool = False) -> None:
        await trio.sleep_forever()

    service._node.connect = never  # type: ignore[method-assign]
    for i in range(6):
        _hear(service, f"P{i}")
    async with trio.open_nursery() as nursery:
        for meeting in service._links.meetings_due():
            nursery.start_soon(service._links.meet, meeting)
        await trio.lowlevel.checkpoint()
        assert service._links.meeting_now == 2
        assert service._links.meetings_due() == []  # both slots taken
    assert trio.current_time() == pytest.approx(2.0)  # given up after meet_timeout
    assert len(service._links.meetings_due()) == 2


async def test_nothing_is_met_after_we_left() -> None:
    service = _service()
    _hear(service, "P1")
    service._left = True
    assert service._links.meetings_due() == []
    assert len(service.meetings) == 0


async def test_no_view_lookups_while_no_meeting_can_start() -> None:
    service = _service(meet_slots=1)
    for i in range(50):
        _hear(service, f"P{i:02d}")
    service._links.meeting_now = 1  # the only slot is taken
    looked_up: list[str] = []
    member, knows = service.view.member, service.view.knows
    service.view.member = lambda peer: looked_up.append(peer) or member(peer)  # type: ignore[method-assign]
    service.view.knows = lambda peer: looked_up.append(peer) or knows(peer)  # type: ignore[method-assign]
    assert service._links.meetings_due() == []
    assert looked_up == []
    service._links.meeting_now = 0
    assert [m.peer for m in service._links.meetings_due()] == ["P00"]
