"""Health gossip between real py-libp2p nodes on 127.0.0.1 (adapters/gossip.py).

Each node is a P2PNode, a CheckManager with no checks (it reports itself healthy, score 1)
and a GossipService on ClusterConfig.devnet(): a 0.5 s heartbeat, suspicion 2 s (6 s
unconfirmed). Topologies are sparse chains (node i bootstraps to node i-1), so gossip must
be relayed. One test runs a node in a child process to freeze it for real (SIGSTOP).
Every wait is bounded and polls a condition; the bounds are the design's detection times
(mesh/cluster_config.py) plus a margin for a shared 2-core machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.utils import encode_varint_prefixed
from prometheus_client import CollectorRegistry

from adapters.client import ClusterView as ClientView
from adapters.election_check import ELECTION_CHECK, election_result
from adapters.envelope import EnvelopeCache
from adapters.gossip import GossipService
from adapters.gossip_tuning import GossipTuning, publish_budget
from adapters.guarded_pubsub import GuardedPubsub
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from adapters.p2p_identity import load_or_create_identity
from adapters.p2p_node import P2PNode
from adapters.publish_decisions import is_news
from adapters.pull_pacing import max_pages
from adapters.view_pull import PULL_PROTOCOL
from devnet import forge
from mesh import digest_pb2
from mesh.admission import AdmissionPolicy
from mesh.cluster_config import ClusterConfig, devnet, production
from mesh.cluster_json import cluster_json
from mesh.cluster_page import ClusterPage
from mesh.cluster_transitions import Cause
from mesh.cluster_view import ClusterView
from mesh.digest import TOPIC, encode_gossip
from mesh.election import ElectionHealth
from mesh.manager import CheckManager
from mesh.messages import HealthDigest, MemberState, ViewSnapshot
from mesh.model import CheckResult, HealthCheck, Status
from mesh.rejection import RejectReason
from mesh.score_history import ScorePoint
from mesh.sequencer import Sequencer
from mesh.snapshot_codec import PULL_REQUEST, decode_snapshot, encode_snapshot
from mesh.wire_bounds import MAX_GOSSIP_BYTES, MAX_SNAPSHOT_BYTES
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)
DEVNET = devnet()


# ---------------------------------------------------------------- pure shapes


def _digest(node_id: str, start: float, seq: int, **fields: object) -> HealthDigest:
    return HealthDigest(
        node_id=node_id,
        start_time_ms=int(start * 1000),
        seq=seq,
        sent_at_ms=int(start * 1000) + seq,
        **fields,  # type: ignore[arg-type]
    )


def test_cluster_json_has_the_documented_shape() -> None:
    view = ClusterView("Self1", devnet())
    view.on_gossip(_digest("Self1", 1_700_000_000.0, 1, version="v1", http_addr="h:1"), 100.0)
    peer2 = _digest("Peer2", 1_700_000_010.0, 1, status=Status.DEGRADED, score=0.5, local_health=3)
    view.on_gossip(peer2, 100.0)
    view.on_connected("Peer2", 100.0)
    view.on_disconnected("Peer2", 101.0)

    scores = [ScorePoint(60.0, 1.0), ScorePoint(90.0, 0.5)]
    body = cluster_json(view, now=102.5, wall_now=1_700_000_100.0, scores=scores)

    assert list(body) == [
        "node_id", "status", "score", "admin", "counts", "peers", "page", "score_history",
        "timestamp",
    ]  # fmt: skip
    assert body["page"] == {"total": 2, "next": None}
    # Oldest first, on the wall clock like the histories.
    assert body["score_history"] == [
        {"at": "2023-11-14T22:14:17.5Z", "score": 1.0},
        {"at": "2023-11-14T22:14:47.5Z", "score": 0.5},
    ]
    assert body["node_id"] == "Self1"
    assert body["status"] == "degraded"
    assert body["admin"] == "Self1"  # the only alive and healthy member
    assert body["counts"] == {"alive": 1, "suspect": 1, "dead": 0, "left": 0}
    assert body["timestamp"] == "2023-11-14T22:15:00Z"
    peer, me = body["peers"]  # sorted by peer id
    assert (peer["peer_id"], me["peer_id"]) == ("Peer2", "Self1")
    assert list(peer) == [
        "peer_id",
        "self",
        "state",
        "status",
        "score",
        "components",
        "last_seen_age",
        "incarnation",
        "start_time",
        "version",
        "http_addr",
        "p2p_addrs",
        "suspected_by",
        "local_health",
        "history",
    ]
    assert me["self"] is True and me["last_seen_age"] is None
    assert peer["state"] == "suspect" and peer["status"] == "degraded"
    assert peer["last_seen_age"] == 2.5
    assert peer["suspected_by"] == ["Self1"]
    assert (peer["local_health"], me["local_health"]) == (3, 0)
    assert peer["start_time"] == "2023-11-14T22:13:30Z"
    # Newest first; view times (monotonic) become wall times: 101.0 is 1.5 s before now.
    assert peer["history"] == [
        {
            "at": "2023-11-14T22:14:58.5Z",
            "from": "alive",
            "to": "suspect",
            "cause": "disconnected",
            "detail": "by Self1",
        },
        {
            "at": "2023-11-14T22:14:57.5Z",
            "from": None,
            "to": "alive",
            "cause": "joined",
            "detail": "",
        },
    ]


def test_peers_are_sorted_by_peer_id() -> None:
    view = ClusterView("M", devnet())
    for name in ("Z", "A", "M"):
        view.on_gossip(_digest(name, 1_700_000_000.0, 1), 1.0)
    body = cluster_json(view, now=1.0, wall_now=1_700_000_001.0)
    assert [p["peer_id"] for p in body["peers"]] == ["A", "M", "Z"]


def test_cluster_json_pages_and_filters_but_counts_the_whole_view() -> None:
    view = ClusterView("M", devnet())
    for name in ("Z", "A", "M", "Q"):
        view.on_gossip(_digest(name, 1_700_000_000.0, 1), 1.0)
    view.on_connected("Q", 1.0)
    view.on_disconnected("Q", 1.5)  # suspect
    page = ClusterPage(frozenset({ALIVE}), after="A", limit=1)
    body = cluster_json(view, now=2.0, wall_now=1_700_000_002.0, page=page)
    assert [p["peer_id"] for p in body["peers"]] == ["M"]
    assert body["page"] == {"total": 3, "next": "M"}
    assert body["counts"] == {"alive": 3, "suspect": 1, "dead": 0, "left": 0}
    assert body["admin"] is not None


@pytest.mark.parametrize(
    ("n", "rate", "burst"),
    [
        (1, 5.0, 5.0),  # capped by publish_rate and publish_burst
        (2, 5.0, 5.0),
        (5, 2.0, 5.0),
        (10, 1.0, 5.0),
        (20, 0.5, 2.5),  # 10 msgs/s shared: the whole topic stays at the same rate
        (100, 0.1, 2.0),  # burst floor
    ],
)
def test_publish_budget_shares_the_topic_rate(n: int, rate: float, burst: float) -> None:
    assert publish_budget(GossipTuning(), n) == pytest.approx((rate, burst))


@pytest.mark.parametrize(
    ("health", "healthy", "score"),
    [
        (ElectionHealth(None, None, None, 0, 0, 0.0, False), False, 0.0),
        (ElectionHealth("A", 60.0, 60.0, 0, 0, 1.0, True), True, 1.0),
        (ElectionHealth("A", 60.0, 3.0, 1, 1, 0.2, True), True, 0.6),
        (ElectionHealth("A", 60.0, 3.0, 9, 4, 0.2, False), False, 0.1),
    ],
)
def test_election_result(health: ElectionHealth, healthy: bool, score: float) -> None:
    result = election_result(health, max_changes=3)
    assert result.healthy is healthy
    assert result.details["score"] == pytest.approx(score)
    assert set(result.details) >= {
        "admin",
        "admin_uptime",
        "leadership_changes",
        "last_leadership_change",
        "admin_heartbeat_age",
        "stability",
        "score",
    }


# ---------------------------------------------------------------- harness


@dataclass
class Member:
    """One in-process node under the test's control."""

    node: P2PNode
    service: GossipService
    manager: CheckManager
    registry: CollectorRegistry
    scope: trio.CancelScope
    stopped: trio.Event

    @property
    def peer_id(self) -> str:
        return self.node.peer_id

    @property
    def addr(self) -> str:
        return self.node.listen_addrs[0]

    def state_of(self, peer: str) -> MemberState | None:
        member = self.service.view.member(peer)
        return None if member is None else member.state

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def rejected(self, reason: RejectReason) -> float:
        return self.sample("chorus_gossip_rejected_total", reason=str(reason))


async def _run_member(
    key_file: Path,
    config: ClusterConfig,
    p2p: dict[str, Any],
    tuning: GossipTuning | None = None,
    admission: AdmissionPolicy | None = None,
    starved: Callable[[], bool] = lambda: False,
    *,
    task_status: trio.TaskStatus[Member],
) -> None:
    stopped = trio.Event()
    try:
        with trio.CancelScope() as scope:
            cfg = P2PConfig(key_file=key_file, listen_port=0, **p2p)
            async with open_p2p_node(cfg) as node, trio.open_nursery() as nursery:
                registry = CollectorRegistry()
                manager = CheckManager(node_id=node.peer_id, version="v-test")
                service = GossipService(
                    node,
                    manager,
                    config,
                    registry=registry,
                    http_addr="http://127.0.0.1:1",
                    # Not meeting members: the links are the test's (a chain stays one).
                    tuning=tuning or GossipTuning(meet_links=0),
                    admission=admission,
                    starved=starved,
                )
                await nursery.start(service.run)
                task_status.started(Member(node, service, manager, registry, scope, stopped))
    finally:
        stopped.set()


@dataclass
class Cluster:
    nursery: trio.Nursery
    tmp_path: Path
    config: ClusterConfig = DEVNET
    p2p: dict[str, Any] = dataclasses.field(default_factory=dict)  # P2PConfig overrides
    admission: AdmissionPolicy | None = None

    async def start(
        self,
        name: str,
        *peers: Member,
        tuning: GossipTuning | None = None,
        starved: Callable[[], bool] = lambda: False,
    ) -> Member:
        """A node connected to ``peers`` only. Not P2PConfig.bootstrap: its Kademlia
        refresh dials the bootstrap peer's neighbours too, and the topology would not
        stay sparse. ``starved`` stands in for its event-loop lag monitor."""
        key = self.tmp_path / f"{name}.key"
        run = partial(_run_member, key, self.config, self.p2p, tuning, self.admission, starved)
        member: Member = await self.nursery.start(run)
        for peer in peers:
            await member.node.connect(peer.addr)
        return member

    async def chain(self, count: int, prefix: str = "n") -> list[Member]:
        members: list[Member] = []
        for i in range(count):
            members.append(await self.start(f"{prefix}{i}", *members[-1:]))
        return members

    async def kill(self, member: Member) -> None:
        """Abruptly: no leave, the host just goes."""
        member.scope.cancel()
        await member.stopped.wait()


@asynccontextmanager
async def _cluster(
    tmp_path: Path, config: ClusterConfig = DEVNET, **p2p: Any
) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        yield Cluster(nursery, tmp_path, config, p2p)
        nursery.cancel_scope.cancel()


def _everyone_sees(
    observers: list[Member], peers: list[str], state: MemberState
) -> Callable[[], bool]:
    return lambda: all(o.state_of(p) is state for o in observers for p in peers)


def _all_alive(members: list[Member]) -> Callable[[], bool]:
    return _everyone_sees(members, [m.peer_id for m in members], ALIVE)


def _states_seen(member: Member, peer: str) -> list[MemberState | None]:
    found = member.service.view.member(peer)
    assert found is not None
    return [t.to_state for t in found.history]


# ---------------------------------------------------------------- scenarios


@pytest.mark.network
async def test_five_nodes_converge_over_a_chain(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(5)
        await wait_until(_all_alive(members), timeout=10, what="every view lists all five alive")

        # The longest running, in every view, once its digest says it is healthy (all
        # alive can come first: the digests of its first check results are on their way).
        await wait_until(
            lambda: {m.service.cluster_json()["admin"] for m in members} == {members[0].peer_id},
            timeout=10,
            what="every view elects the longest running node",
        )
        body = members[2].service.cluster_json()
        assert body["counts"] == {"alive": 5, "suspect": 0, "dead": 0, "left": 0}
        assert body["status"] == "healthy"
        assert [p["self"] for p in body["peers"]].count(True) == 1
        assert members[2].service.peer_json(members[4].peer_id)["http_addr"] == (
            "http://127.0.0.1:1"
        )
        assert members[2].service.peer_json("NoSuchPeer") is None
        head = members[0]
        assert head.sample("chorus_cluster_peers", state="alive") == 5
        assert head.sample("chorus_cluster_health_score") == 1.0
        # Lifeguard's local health is exported (its values depend on this machine's load).
        assert head.sample("chorus_cluster_timeout_multiplier") >= 1
        assert head.registry.get_sample_value("chorus_cluster_self_doubt") is not None
        assert head.sample("chorus_gossip_published_total") >= 1
        assert head.sample("chorus_gossip_received_total") >= 4
        assert head.sample("chorus_gossip_bytes_total", direction="in") > 0
        for member in members:
            assert sum(member.rejected(r) for r in RejectReason) == 0
        # Still a chain: the far ends heard of each other through relays.
        assert [len(m.node.connected_peers()) for m in members] == [1, 2, 2, 2, 1]


@pytest.mark.network
async def test_killed_node_turns_dead_everywhere(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(4)
        await wait_until(_all_alive(members), timeout=10, what="convergence")
        victim, others = members[-1], members[:-1]

        started = trio.current_time()
        await cluster.kill(victim)
        # Disconnect 0.2 s, suspicion 2 s once two others confirm (their silence: 1.5 s).
        await wait_until(
            _everyone_sees(others, [victim.peer_id], DEAD), timeout=10, what="dead everywhere"
        )
        assert trio.current_time() - started < 8
        for member in others:
            assert _states_seen(member, victim.peer_id)[-2:] == [SUSPECT, DEAD]
        # The rest of the cluster is unaffected.
        assert _all_alive(others)()


@pytest.mark.network
@pytest.mark.parametrize(("certified", "unmet_dial_members"), [(True, 32), (False, 32), (True, 1)])
async def test_a_certified_member_never_met_is_dialled_back_where_it_advertised(
    tmp_path: Path, certified: bool, unmet_dial_members: int
) -> None:
    # c never met the victim: it knows its signed digest only, through a. Under an
    # admission policy it dials the victim's advertised port when it hears the suspicion
    # and the refusal is its own evidence; in an open cluster, or one with more live
    # members than unmet_dial_members, it waits out the suspicion.
    async with _cluster(tmp_path) as cluster:
        names = ("a", "victim", "c")
        if certified:
            ids = [load_or_create_identity(tmp_path / f"{name}.key") for name in names]
            cluster.admission = AdmissionPolicy(
                allowed_peers=frozenset(ID.from_pubkey(k.public_key).to_base58() for k in ids)
            )
        a = await cluster.start("a")
        victim = await cluster.start("victim", a)
        tuning = GossipTuning(meet_links=0, unmet_dial_members=unmet_dial_members)
        c = await cluster.start("c", a, tuning=tuning)
        await wait_until(_all_alive([a, victim, c]), timeout=10, what="convergence")
        assert victim.peer_id not in c.node.connected_peers()

        await cluster.kill(victim)
        await wait_until(
            _everyone_sees([a, c], [victim.peer_id], DEAD), timeout=10, what="dead at a and c"
        )
        seen = c.service.view.member(victim.peer_id)
        assert seen is not None
        dialled = certified and unmet_dial_members > 1
        assert ("our dial-back refused" in seen.history[-1].detail) is dialled


@pytest.mark.network
async def test_leaving_node_turns_left_everywhere_within_a_second(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(3)
        await wait_until(_all_alive(members), timeout=10, what="convergence")
        leaver, others = members[-1], members[:-1]

        await leaver.service.leave()
        await wait_until(
            _everyone_sees(others, [leaver.peer_id], LEFT), timeout=1.0, what="left everywhere"
        )
        assert leaver.service.cluster_json()["status"] == "stopping"
        # Its connection closing afterwards is no evidence against it.
        await cluster.kill(leaver)
        neighbour = others[-1].service.view
        await wait_until(
            lambda: not neighbour.member(leaver.peer_id).connected,  # type: ignore[union-attr]
            timeout=5,
            what="the view hears of the closed connection",
        )
        assert _everyone_sees(others, [leaver.peer_id], LEFT)()


@pytest.mark.network
async def test_notices_are_flooded_and_routine_digests_are_not(tmp_path: Path) -> None:
    # adapters/flood_publish.py: what a's publisher sends inside flooding(), by kind.
    from adapters import flood_publish

    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(3)
        await wait_until(_all_alive(members), timeout=10, what="convergence")
        a, victim = members[0], members[1]
        sent: list[tuple[str, bool]] = []
        publish = a.node.pubsub.publish

        async def spy(topic: str, data: bytes) -> None:
            kind = digest_pb2.Gossip.FromString(data).WhichOneof("body")
            sent.append((str(kind), flood_publish._FLOOD.get()))
            await publish(topic, data)

        a.node.pubsub.publish = spy  # type: ignore[method-assign]
        await a.service._publisher.publish_digest(trio.current_time())
        await cluster.kill(victim)
        await wait_until(lambda: ("suspect", True) in sent, timeout=10, what="a's suspicion notice")
        a.service._publisher.refute(0)
        await wait_until(lambda: ("digest", True) in sent, timeout=5, what="a's refutation")
        await a.service.leave()
        assert ("digest", False) in sent
        assert ("suspect", False) not in sent
        assert sent[-1] == ("leave", True)


@pytest.mark.network
async def test_a_starved_node_tells_its_peers_at_once_and_when_it_recovers(
    tmp_path: Path,
) -> None:
    # Its peers give a suspicion of it that much longer (mesh/awareness.py, rule 8). The
    # production refresh is 30 s: the news goes out on its own.
    lagging = {"now": False}
    async with _cluster(tmp_path, production()) as cluster:
        peer = await cluster.start("peer")
        slow = await cluster.start("slow", peer, starved=lambda: lagging["now"])
        await wait_until(_all_alive([peer, slow]), timeout=10, what="convergence")
        assert _held_digest(peer, slow.peer_id).local_health == 0
        lagging["now"] = True
        starved = production().awareness_max - 1
        await wait_until(
            lambda: _held_digest(peer, slow.peer_id).local_health == starved,
            timeout=5,
            what="the peer hears that it is starved",
        )
        # Its peer's pinger gives it the whole ping timeout (no early verdict on it).
        assert peer.node.pinger.patient(slow.peer_id)
        # Operators and test authors see it too (/health/cluster, adapters.client).
        seen = ClientView.from_json(peer.service.cluster_json())
        assert {p.peer_id: p.local_health for p in seen.peers} == {
            slow.peer_id: starved,
            peer.peer_id: 0,
        }
        lagging["now"] = False
        await wait_until(
            lambda: _held_digest(peer, slow.peer_id).local_health == 0,
            timeout=5,
            what="the peer hears that it recovered",
        )
        assert not peer.node.pinger.patient(slow.peer_id)


@pytest.mark.network
async def test_what_the_publisher_would_say_follows_each_check_result(tmp_path: Path) -> None:
    # It keeps our status and scores between results (adapters/gossip_publisher.py): a
    # result must reach the next poll's judgement, or a failing check is never news.
    healthy = {"now": True}

    async def probe() -> CheckResult:
        return CheckResult.ok("fine") if healthy["now"] else CheckResult.fail("broken")

    async with _cluster(tmp_path, production()) as cluster:
        node = await cluster.start("node")
        said = node.service._publisher._said
        check = HealthCheck(name="disk-space", checker=probe, interval=3600.0)
        node.manager.register(check)
        await node.manager.run_check(check)
        before = said()
        assert before.components["disk-space"] == 1.0
        healthy["now"] = False
        for _ in range(5):  # past the flap thresholds, whatever they are
            await node.manager.run_check(check)
        after = said()
        assert after.components["disk-space"] < 1.0
        assert after.score < before.score
        assert is_news(before, after)
        node.manager.unregister("disk-space")
        node.manager.register(dataclasses.replace(check, last_result=None))
        assert "disk-space" not in said().components  # no result yet: no component
        node.manager.begin_stopping()
        assert said().status is Status.STOPPING  # news: peers hear it before the leave


@pytest.mark.network
async def test_restarted_node_comes_back_alive_at_once(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(3)
        await wait_until(_all_alive(members), timeout=10, what="convergence")
        old, others = members[-1], members[:-1]
        old_start = others[0].service.view.member(old.peer_id).start_time  # type: ignore[union-attr]

        await cluster.kill(old)
        await wait_until(
            lambda: all(o.state_of(old.peer_id) in (SUSPECT, DEAD) for o in others),
            timeout=10,
            what="suspected after the kill",
        )
        started = trio.current_time()
        new = await cluster.start("n2", others[-1])  # the same key file: the same peer id
        assert new.peer_id == old.peer_id
        await wait_until(
            _everyone_sees([*others, new], [m.peer_id for m in [*others, new]], ALIVE),
            timeout=3,
            what="the new life alive everywhere",
        )
        assert trio.current_time() - started < 3
        for member in others:
            seen = member.service.view.member(new.peer_id)
            assert seen is not None and seen.start_time > old_start
            assert seen.history[-1].cause is Cause.RESTARTED


@pytest.mark.network
async def test_late_joiner_converges_at_once_via_pull(tmp_path: Path) -> None:
    # A 10 s refresh and a settled cluster: nobody publishes during the test and GossipSub
    # has no recent message left to offer, so the joiner can only learn of the members
    # beyond its neighbour from the view it pulls.
    slow = dataclasses.replace(DEVNET, refresh_period=10.0)
    async with _cluster(tmp_path, slow) as cluster:
        members = await cluster.chain(3)
        await wait_until(_all_alive(members), timeout=8, what="convergence")
        await wait_until(lambda: all(map(_settled, members)), timeout=8, what="settled")

        started = trio.current_time()
        joiner = await cluster.start("late", members[0])
        everyone = [m.peer_id for m in [*members, joiner]]
        await wait_until(
            _everyone_sees([joiner], everyone, ALIVE), timeout=2, what="the joiner lists all"
        )
        assert trio.current_time() - started < slow.refresh_interval(4)
        assert joiner.sample("chorus_cluster_pulls_total", side="client", result="ok") == 1
        for far in members[1:]:
            seen = joiner.service.view.member(far.peer_id)
            assert seen is not None and "via snapshot" in seen.history[0].detail


@asynccontextmanager
async def _deaf_joiner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, blind: bool = False
) -> AsyncIterator[tuple[Member, Member, Member]]:
    """Members a and b under admission, and "late" joining through a, deaf to the
    topic (it hears no gossip at all) and, if ``blind``, to every peer's subscription."""
    ids = {
        name: ID.from_pubkey(load_or_create_identity(tmp_path / f"{name}.key").public_key)
        for name in ("a", "b", "late")
    }
    push, subscribed = GuardedPubsub.push_msg, GuardedPubsub.handle_subscription

    async def deaf(self: GuardedPubsub, forwarder: ID, msg: rpc_pb2.Message) -> None:
        if self.my_id == ids["late"] and forwarder != self.my_id and TOPIC in msg.topicIDs:
            return
        await push(self, forwarder, msg)

    def blinded(self: GuardedPubsub, origin: ID, sub: rpc_pb2.RPC.SubOpts) -> None:
        if self.my_id != ids["late"]:
            subscribed(self, origin, sub)

    monkeypatch.setattr(GuardedPubsub, "push_msg", deaf)
    if blind:
        monkeypatch.setattr(GuardedPubsub, "handle_subscription", blinded)
    async with _cluster(tmp_path) as cluster:
        cluster.admission = AdmissionPolicy(
            allowed_peers=frozenset(pid.to_base58() for pid in ids.values())
        )
        a = await cluster.start("a")
        b = await cluster.start("b", a)
        await wait_until(_all_alive([a, b]), timeout=8, what="a and b agree")
        run = partial(
            _run_member,
            tmp_path / "late.key",
            cluster.config,
            {"bootstrap": (a.addr,)},
            None,
            cluster.admission,
        )
        late: Member = await cluster.nursery.start(run)
        yield a, b, late


@pytest.mark.network
async def test_under_admission_a_joiner_pulls_from_its_bootstrap_peer_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other peers are pulled from once their digest is admitted; a bootstrap peer is the
    # operator's word and need not wait. Here the joiner hears no gossip at all, so only
    # that pull can tell it of anyone (before, it waited for a digest that never came).
    async with _deaf_joiner(tmp_path, monkeypatch) as (a, b, late):
        await wait_until(
            _everyone_sees([late], [a.peer_id, b.peer_id], ALIVE),
            timeout=5,
            what="the joiner lists a and b",
        )
        seen = late.service.view.member(a.peer_id)
        assert seen is not None and f"via snapshot from {a.peer_id}" in seen.history[0].detail


@pytest.mark.network
async def test_a_joiner_pulls_from_its_bootstrap_peer_before_its_subscription_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A starting node saw its bootstrap peer's subscription 0.2 s after connecting, of a
    # 20-node join's 0.45 s (2026-12-05). Here the joiner never sees it, nor any gossip: a
    # joiner that waited for it (pull_subscription_wait, 5 s) would list nobody in time.
    async with _deaf_joiner(tmp_path, monkeypatch, blind=True) as (a, b, late):
        await wait_until(
            _everyone_sees([late], [a.peer_id, b.peer_id], ALIVE),
            timeout=3,
            what="the joiner lists a and b",
        )
        assert ID.from_base58(a.peer_id) not in late.node.guarded_pubsub.peer_topics.get(TOPIC, ())


@pytest.mark.network
async def test_a_pull_on_connect_sends_our_summary_unless_we_had_lost_the_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Members a joiner connects to pull it too; with their summary the answer is what
    # differs (the joiner), not a page of every member. A peer we had lost is pulled whole:
    # summaries cannot tell a suspicion or a leave from what we hold.
    import adapters.view_pull as view_pull

    asked: list[bytes | None] = []
    original = view_pull.pull_request

    def spy(after: str, summary: bytes | None) -> bytes:
        asked.append(summary)
        return original(after, summary)

    monkeypatch.setattr(view_pull, "pull_request", spy)
    # No anti-entropy syncs (they always send a summary): every pull here is one on connect.
    quiet = GossipTuning(meet_links=0, sync_first=3600.0, sync_interval=3600.0)
    async with _cluster(tmp_path) as cluster:
        a = await cluster.start("a", tuning=quiet)
        b = await cluster.start("b", a, tuning=quiet)
        await wait_until(_all_alive([a, b]), timeout=8, what="a and b agree")
        assert len(asked) >= 2 and all(summary is not None for summary in asked), asked
        asked.clear()
        await b.node.drop_peer(a.peer_id)
        await wait_until(lambda: b.state_of(a.peer_id) is not ALIVE, timeout=8, what="b lost a")
        await b.node.connect(a.addr)
        await wait_until(lambda: None in asked, timeout=8, what="a whole pull of a")


@pytest.mark.network
async def test_digests_keep_component_names_while_a_member_of_an_older_build_is_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mesh/wire_level.py: a rolling upgrade. "old" stands in for a node of the previous
    # build, whose digests say no wire level; while it is live, a's digests name their
    # components, and once it says level 2 they are numbered.
    import adapters.gossip_publisher as gossip_publisher

    old_id = ID.from_pubkey(load_or_create_identity(tmp_path / "old.key").public_key)
    upgraded = False
    sign = Sequencer.digest

    def digest(self: Sequencer, now: float, **fields: Any) -> HealthDigest:
        made = sign(self, now, **fields)
        if self.node_id == old_id.to_base58() and not upgraded:
            return dataclasses.replace(made, wire_level=0)
        return made

    written: list[tuple[str, bool]] = []
    encode = gossip_publisher.encode_gossip

    def spy(message: Any, *, compact: bool = True) -> bytes:
        written.append((message.node_id, compact))
        return encode(message, compact=compact)

    monkeypatch.setattr(Sequencer, "digest", digest)
    monkeypatch.setattr(gossip_publisher, "encode_gossip", spy)
    async with _cluster(tmp_path) as cluster:
        a = await cluster.start("a")
        old = await cluster.start("old", a)
        await wait_until(_all_alive([a, old]), timeout=8, what="a and old agree")
        assert a.service.view.wire_level(old.peer_id) == 0
        written.clear()
        await a.service._publisher.publish_digest(trio.current_time())
        assert [compact for node, compact in written if node == a.peer_id][-1] is False

        upgraded = True
        await old.service._publisher.publish_digest(trio.current_time())
        await wait_until(
            lambda: a.service.view.wire_level(old.peer_id) == 2, timeout=5, what="old upgraded"
        )
        written.clear()
        await a.service._publisher.publish_digest(trio.current_time())
        assert [compact for node, compact in written if node == a.peer_id][-1] is True


@pytest.mark.network
async def test_a_view_larger_than_one_snapshot_is_pulled_in_pages(tmp_path: Path) -> None:
    # 1,500 members' signed digests (some 200 bytes each) do not fit in one 256 KiB
    # snapshot: only by paging does a joiner learn them all from its first pull.
    big = dataclasses.replace(DEVNET, max_members=2048, join_burst=2048)
    async with _cluster(tmp_path, big) as cluster:
        (old,) = await cluster.chain(1)
        started_ms = math.floor(time.time() * 1000) - 60_000
        for ident in forge.mint_many(1500):
            digest = forge.digest_of(ident, start_time_ms=started_ms)
            raw = forge.statement(forge.sign(ident, forge.raw_gossip(digest)))
            assert old.service.view.on_gossip(digest, trio.current_time(), raw).accepted
        first = encode_snapshot(old.service.view.snapshot(time.time()))
        assert digest_pb2.ViewSnapshot.FromString(first).next_after  # more than one page
        joiner = await cluster.start("joiner", old)
        await wait_until(
            lambda: len(joiner.service.view.members()) == 1502,
            timeout=30,
            what="the joiner lists all 1,502 members",
        )
        pages = joiner.sample("chorus_cluster_pulls_total", side="client", result="ok")
        assert pages == 2
        assert old.sample("chorus_cluster_pulls_total", side="server", result="served") == 2


@pytest.mark.network
async def test_anti_entropy_brings_back_a_statement_gossip_lost(tmp_path: Path) -> None:
    # A statement that reached one node's view but was never gossiped (as a digest
    # turned away in a join storm is not forwarded) reaches the other at its next sync.
    syncing = GossipTuning(meet_links=0, sync_interval=0.5)
    async with _cluster(tmp_path) as cluster:
        a = await cluster.start("a", tuning=syncing)
        b = await cluster.start("b", a, tuning=syncing)
        await wait_until(_all_alive([a, b]), timeout=10, what="convergence")
        lost = forge.mint()
        started_ms = math.floor(time.time() * 1000) - 60_000
        digest = forge.digest_of(lost, start_time_ms=started_ms)
        raw = forge.statement(forge.sign(lost, forge.raw_gossip(digest)))
        assert a.service.view.on_gossip(digest, trio.current_time(), raw).accepted
        await wait_until(
            lambda: b.service.view.knows(lost.peer_id), timeout=5, what="b synced with a"
        )
        assert a.service.view.summary() == b.service.view.summary()
        # Agreeing views: the next syncs carry nobody.
        served = a.sample("chorus_cluster_pulls_total", side="server", result="served")
        await wait_until(
            lambda: (
                a.sample("chorus_cluster_pulls_total", side="server", result="served") >= served + 2
            ),
            timeout=5,
            what="two more syncs",
        )
        assert len(b.service.view.members()) == 3


def _settled(member: Member) -> bool:
    """Nothing of this member's can still reach a newcomer by gossip: its GossipSub mesh
    holds every connected peer and it has announced itself to each (GossipService publishes
    once when its mesh gains a peer), and GossipSub's gossip windows (the last 3
    heartbeats' messages, offered to peers in IHAVE) are empty."""
    service = member.service
    mesh = service._publisher.mesh_peers()
    router = member.node.guarded_pubsub.router
    return (
        mesh == set(member.node.connected_peers())
        and mesh <= service._publisher.decisions.announced
        and not service._publisher.decisions.announce
        and not router.mcache.window(TOPIC)  # type: ignore[attr-defined]
    )


@pytest.mark.network
async def test_rogue_peer_changes_nothing_and_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _cluster(tmp_path) as cluster:
        a, b = await cluster.chain(2)
        await wait_until(_all_alive([a, b]), timeout=10, what="convergence")
        rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
        async with open_p2p_node(rogue_cfg) as rogue:
            # connect(), not bootstrap: bootstrap's DHT refresh would also dial b.
            await rogue.connect(a.addr)
            await wait_until(
                lambda: a.node.host.get_id() in rogue.guarded_pubsub.peer_topics.get(TOPIC, ()),
                timeout=5,
                what="the rogue sees a's subscription",
            )
            old = _held_digest(a, b.peer_id)
            await wait_until(
                lambda: _held_digest(a, b.peer_id).key > old.key,
                timeout=5,
                what="a newer digest of b",
            )
            before = {m.peer_id: _picture(m) for m in (a, b)}

            await rogue.pubsub.publish(TOPIC, b"\xff\x00 not a protobuf")
            await rogue.pubsub.publish(TOPIC, b"\xff\x00 still not a protobuf")
            await rogue.pubsub.publish(TOPIC, b"\x00" * (MAX_GOSSIP_BYTES + 1))
            forged = dataclasses.replace(
                old, seq=old.seq + 10_000, status=Status.UNHEALTHY, score=0.0
            )
            await rogue.pubsub.publish(TOPIC, encode_gossip(forged))
            # The same payload under a fresh libp2p seqno is a new message to GossipSub:
            # replay protection is the view's (notes, "Hostile input"). Signing as b
            # stands in for an old message of b captured and re-sent.
            b_key = load_or_create_identity(tmp_path / "n1.key")
            await _inject(rogue, a, _signed(b_key, encode_gossip(old)))

            reasons = [
                RejectReason.MALFORMED,
                RejectReason.OVERSIZED,
                RejectReason.SIGNER_MISMATCH,
                RejectReason.REPLAYED,
            ]
            expected = [2, 1, 1, 1]
            await wait_until(
                lambda: [a.rejected(r) for r in reasons] == expected,
                timeout=5,
                what=f"each counted: {[a.rejected(r) for r in reasons]}",
            )
            # Logged once per (signer, reason): a flood must not flood the log.
            logged = [
                r.getMessage()
                for r in caplog.records
                if r.name == "adapters.gossip"
                and r.levelno >= logging.WARNING
                and rogue.peer_id in r.getMessage()
            ]
            assert [m.split(": ")[1].split(" ")[0] for m in logged] == [
                "malformed",
                "oversized",
                "signer_mismatch",
            ]
            assert {m.peer_id: _picture(m) for m in (a, b)} == before
            assert a.state_of(rogue.peer_id) is None
            assert _held_digest(a, b.peer_id).status is Status.HEALTHY
            # Nobody crashed: b's digests still reach a.
            newest = _held_digest(a, b.peer_id).key
            await wait_until(
                lambda: _held_digest(a, b.peer_id).key > newest, timeout=5, what="gossip flows"
            )
            assert not (a.stopped.is_set() or b.stopped.is_set())


def _held_digest(member: Member, peer: str) -> HealthDigest:
    entries = member.service.view.snapshot(1.0).members
    return next(e.digest for e in entries if e.digest.node_id == peer)


def _picture(member: Member) -> dict[str, tuple[MemberState, Status]]:
    return {p: (m.state, m.status) for p, m in member.service.view.members().items()}


def _signed(key_pair: KeyPair, data: bytes) -> rpc_pb2.Message:
    """A pubsub message on TOPIC signed as py-libp2p's Pubsub.publish signs it."""
    msg = rpc_pb2.Message(
        data=data,
        topicIDs=[TOPIC],
        from_id=ID.from_pubkey(key_pair.public_key).to_bytes(),
        seqno=os.urandom(8),
    )
    msg.signature = key_pair.private_key.sign(
        PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString()
    )
    msg.key = key_pair.public_key.serialize()
    return msg


async def _inject(sender: P2PNode, target: Member, msg: rpc_pb2.Message) -> None:
    """One RPC frame straight onto a GossipSub stream, as any peer can write one."""
    stream = await sender.host.new_stream(target.node.host.get_id(), [PROTOCOL_ID_V11])
    await stream.write(encode_varint_prefixed(rpc_pb2.RPC(publish=[msg]).SerializeToString()))


@pytest.mark.network
async def test_pull_server_answers_with_its_view_and_refuses_abuse(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        a, b = await cluster.chain(2)
        await wait_until(_all_alive([a, b]), timeout=10, what="convergence")
        rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
        async with open_p2p_node(rogue_cfg) as rogue:
            await rogue.connect(a.addr)
            target = a.node.host.get_id()

            data = await _raw_pull(rogue, target, PULL_REQUEST)
            assert data is not None
            snapshot = decode_snapshot(
                data, a.peer_id, time.time(), verify=EnvelopeCache().open, config=DEVNET
            )
            assert isinstance(snapshot, ViewSnapshot)
            # Both members, each in the envelope it signed itself (a's own included).
            assert {e.digest.node_id for e in snapshot.members} == {a.peer_id, b.peer_id}
            # Another version of the request: no answer.
            assert await _raw_pull(rogue, target, b"\x02") is None
            # A flood: each peer gets a burst of 3, then 1 a second.
            answers = [await _raw_pull(rogue, target, PULL_REQUEST) for _ in range(6)]
            served = sum(answer is not None for answer in answers)
            assert served <= 2, served
            assert a.sample("chorus_cluster_pulls_total", side="server", result="refused") >= 5
            assert a.sample("chorus_cluster_pulls_total", side="server", result="served") >= 2
            assert _all_alive([a, b])()


@pytest.mark.network
@pytest.mark.parametrize(
    ("answer", "result", "reason"),
    [
        (
            encode_snapshot(ViewSnapshot("SomebodyElse", int(time.time() * 1000), ())),
            "rejected",
            RejectReason.SIGNER_MISMATCH,
        ),
        (b"\xff garbage", "rejected", RejectReason.MALFORMED),
        (b"\x00" * (MAX_SNAPSHOT_BYTES + 1), "failed", None),
    ],
    ids=["forged", "garbage", "oversized"],
)
async def test_pull_client_survives_a_rogue_server(
    tmp_path: Path, answer: bytes, result: str, reason: RejectReason | None
) -> None:
    async with _cluster(tmp_path) as cluster:
        (a,) = await cluster.chain(1)
        rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
        async with open_p2p_node(rogue_cfg) as rogue:

            async def serve(stream: Any) -> None:
                with contextlib.suppress(Exception):
                    await stream.write(answer)
                    await stream.close()

            rogue.host.set_stream_handler(TProtocol(PULL_PROTOCOL), serve)
            await rogue.pubsub.subscribe(TOPIC, _ignore)
            await rogue.connect(a.addr)  # a pulls from new peers on the topic
            attempts = 1 if result == "rejected" else GossipTuning().pull_attempts
            await wait_until(
                lambda: (
                    a.sample("chorus_cluster_pulls_total", side="client", result=result) == attempts
                ),
                timeout=5,
                what=f"{attempts} pull(s) {result}",
            )
            if reason is not None:
                assert a.rejected(reason) == 1
            assert list(a.service.view.members()) == [a.peer_id]
            assert not a.stopped.is_set()


@pytest.mark.network
@pytest.mark.parametrize(
    ("members", "burst", "fewest", "most"),
    [
        # A view of 4,096 members allows 32 pages a pull, but each page after the first
        # verifies as many statements as a whole pull: it takes a token of the pull budget
        # (1 a second, burst 8), so empty pages naming a next one stop at the budget.
        (4096, 8.0, 8, 11),
        # With budget to spare, the bound is max_pages: 8 for 1,024 members.
        (1024, 100.0, 8, 8),
    ],
    ids=["budget", "max-pages"],
)
async def test_a_responder_that_pages_for_ever_is_stopped(
    tmp_path: Path, members: int, burst: float, fewest: int, most: int
) -> None:
    config = dataclasses.replace(DEVNET, max_members=members)
    assert max_pages(config) == members // 128  # members at 2 KiB, 256 KiB a page
    tuning = GossipTuning(meet_links=0, pull_burst=burst)
    async with _cluster(tmp_path, config) as cluster:
        a = await cluster.start("a", tuning=tuning)
        rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
        async with open_p2p_node(rogue_cfg) as rogue:
            server = forge.PullServer()
            server.answer = lambda _peer: forge.raw_snapshot(
                rogue.peer_id, [], next_after=f"Page{len(server.cursors):04d}"
            )
            server.install(rogue.host)
            await rogue.pubsub.subscribe(TOPIC, _ignore)
            await rogue.connect(a.addr)
            if members == 4096:
                await wait_until(
                    lambda: (
                        a.sample("chorus_cluster_pulls_total", side="client", result="skipped") >= 1
                    ),
                    timeout=10,
                    what="the budget ran dry and the pull stopped",
                )
            else:
                slots = a.service._pulls._slots
                await wait_until(
                    lambda: (
                        a.sample("chorus_cluster_pulls_total", side="client", result="ok") >= 1
                        and slots.value == tuning.max_concurrent_pulls
                    ),
                    timeout=10,
                    what="the pull over, its slot given back",
                )
            assert fewest <= server.total_calls() <= most
            assert not a.stopped.is_set()


@pytest.mark.network
async def test_a_stopped_service_keeps_its_pull_handler_and_refuses(tmp_path: Path) -> None:
    """py-libp2p looks a protocol's handler up again after an await in negotiation: a
    handler removed meanwhile raised KeyError out of the swarm and ended a leaving node
    (CI, tests/sim/test_membership.py). So stopping keeps the handler, which refuses."""
    cfg = P2PConfig(key_file=tmp_path / "a.key", listen_port=0)
    rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
    async with open_p2p_node(cfg) as node, open_p2p_node(rogue_cfg) as rogue:
        registry = CollectorRegistry()
        manager = CheckManager(node_id=node.peer_id, version="v-test")
        service = GossipService(node, manager, DEVNET, registry=registry, http_addr="h:1")
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            nursery.cancel_scope.cancel()
        assert TProtocol(PULL_PROTOCOL) in node.host.get_mux().handlers
        await rogue.connect(node.listen_addrs[0])
        assert await _raw_pull(rogue, node.host.get_id(), PULL_REQUEST) is None
        refused = {"side": "server", "result": "refused"}
        assert registry.get_sample_value("chorus_cluster_pulls_total", refused) == 1
        assert node.connected_peers() == [rogue.peer_id]  # the node is still there


async def _ignore(_msg: object) -> None:
    await trio.lowlevel.checkpoint()


async def _raw_pull(sender: P2PNode, target: ID, request: bytes) -> bytes | None:
    """The pull protocol's client side by hand: the answer, or None when refused."""
    try:
        stream = await sender.host.new_stream(target, [TProtocol(PULL_PROTOCOL)])
        await stream.write(request)
        await stream.close_write()
        data = b""
        with trio.fail_after(5):
            while True:
                try:
                    chunk = await stream.read(65536)
                except StreamEOF:
                    break
                if not chunk:
                    break
                data += chunk
        return data or None  # a reset reads as an empty end: no answer
    except (StreamFailure, StreamError, MuxedStreamError):  # refused: reset at once
        return None


# ---------------------------------------------------------------- a frozen process


@asynccontextmanager
async def _child(key_file: Path, *bootstrap: str) -> AsyncIterator[tuple[trio.Process, str]]:
    """tests/adapters/gossip_child.py in its own process; yields it and its peer id."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.adapters.gossip_child", str(key_file), *bootstrap],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                if not chunk:
                    pytest.fail("child node exited before printing its id")
                line += chunk
        yield proc, line.decode().split()[0]
    finally:
        with trio.CancelScope(shield=True):
            proc.kill()  # SIGKILL ends a stopped process too
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


@pytest.mark.network
@pytest.mark.parametrize("abort", [True, False], ids=["link-aborted", "link-kept"])
async def test_frozen_node_is_suspected_then_dead_and_recovers(tmp_path: Path, abort: bool) -> None:
    # Aborted (P2PConfig.abort_connection_on_ping_failure): the pinger closes the link
    # after a failed ping, so the freeze arrives as a disconnect too, and the child
    # redials once it resumes. Kept (the default): the link stays and the pinger reports
    # the failed ping to the view; a 3 s refresh (9 s of silence) leaves it as the only
    # evidence in time.
    config = DEVNET if abort else dataclasses.replace(DEVNET, refresh_period=3.0)
    async with _cluster(tmp_path, config, abort_connection_on_ping_failure=abort) as cluster:
        members = await cluster.chain(2)
        async with _child(tmp_path / "child.key", *(m.addr for m in members)) as (proc, child):
            await wait_until(
                _everyone_sees(members, [child, *(m.peer_id for m in members)], ALIVE),
                timeout=10,
                what="the child alive everywhere",
            )
            os.kill(proc.pid, signal.SIGSTOP)
            # A failed ping after about 1.4 s, then the minimum suspicion of 2 s (n = 3:
            # no confirmations expected).
            await wait_until(
                _everyone_sees(members, [child], DEAD), timeout=10, what="frozen child dead"
            )
            causes = set()
            for member in members:
                found = member.service.view.member(child)
                assert found is not None
                assert [t.to_state for t in found.history][-2:] == [SUSPECT, DEAD]
                causes.add(found.history[-2].cause)
            if not abort:
                assert Cause.PING_FAILED in causes
                assert causes <= {Cause.PING_FAILED, Cause.SUSPECT_NOTICE}
            # Dead with its link open and silent: the link is closed, so the thawed child
            # is redialled on fresh connections (a partition's backed-off TCP would not be).
            await wait_until(
                lambda: all(child not in m.node.connected_peers() for m in members),
                timeout=10,
                what="the dead child's links closed",
            )

            os.kill(proc.pid, signal.SIGCONT)
            # It speaks again (after redialling, if its links were closed): alive.
            await wait_until(
                _everyone_sees(members, [child], ALIVE), timeout=15, what="child alive again"
            )
            for member in members:
                assert DEAD in _states_seen(member, child)


@pytest.mark.network
async def test_election_check_reports_the_admin(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as cluster:
        members = await cluster.chain(2)
        await wait_until(_all_alive(members), timeout=10, what="convergence")
        check = members[1].service.election_check()
        assert (check.name, check.critical, check.component) == (ELECTION_CHECK, False, "election")
        assert (check.interval, check.timeout) == (15.0, 5.0)
        await wait_until(
            lambda: members[1].service.election.admin == members[0].peer_id,
            timeout=5,
            what="the tracker follows the view",
        )
        result = await check.checker()
        assert result.healthy  # type: ignore[attr-defined]
        assert result.details["admin"] == members[0].peer_id  # type: ignore[attr-defined]
        # The admin's digests are its heartbeat: heard recently on this converged pair.
        age = result.details["admin_heartbeat_age"]  # type: ignore[attr-defined]
        assert 0.0 <= age < 60.0


@pytest.mark.network
async def test_pulls_are_paced(tmp_path: Path) -> None:
    # One pull in the budget and (nearly) no refill: the second new peer is not pulled from.
    async with _cluster(tmp_path) as cluster:
        hub = await cluster.start(
            "hub", tuning=GossipTuning(pull_rate=1e-6, pull_burst=1.0, meet_links=0)
        )
        await cluster.start("a", hub)
        await wait_until(
            lambda: hub.sample("chorus_cluster_pulls_total", side="client", result="ok") == 1,
            timeout=10,
            what="the first pull",
        )
        await cluster.start("b", hub)
        await wait_until(
            lambda: hub.sample("chorus_cluster_pulls_total", side="client", result="skipped") == 1,
            timeout=10,
            what="the second pull skipped",
        )
        assert hub.sample("chorus_cluster_pulls_total", side="client", result="ok") == 1


@pytest.mark.network
async def test_strangers_outside_the_policy_spend_no_tokens(tmp_path: Path) -> None:
    # Rejected as not admitted before any rate: a stranger's flood must not use up the
    # tokens an admitted joiner's first digests need.
    members = {
        ID.from_pubkey(load_or_create_identity(tmp_path / f"{name}.key").public_key).to_base58()
        for name in ("a", "b")
    }
    async with _cluster(tmp_path) as cluster:
        cluster.admission = AdmissionPolicy(allowed_peers=frozenset(members))
        a = await cluster.start("a")
        rogue_cfg = P2PConfig(key_file=tmp_path / "rogue.key", listen_port=0)
        async with open_p2p_node(rogue_cfg) as rogue:
            await rogue.connect(a.addr)
            await wait_until(
                lambda: a.node.host.get_id() in rogue.guarded_pubsub.peer_topics.get(TOPIC, ()),
                timeout=5,
                what="the rogue sees a's subscription",
            )
            own = Sequencer(rogue.peer_id, int(time.time() * 1000) - 1000)
            rogue_key = load_or_create_identity(tmp_path / "rogue.key")
            flood = 150
            for _ in range(flood):
                digest = own.digest(time.time(), status=Status.HEALTHY, score=1.0)
                await _inject(rogue, a, _signed(rogue_key, encode_gossip(digest)))
            await wait_until(
                lambda: a.rejected(RejectReason.NOT_ADMITTED) == flood,
                timeout=10,
                what=f"the flood rejected: {a.rejected(RejectReason.NOT_ADMITTED)}",
            )
            assert a.rejected(RejectReason.FLOODED) == 0
            b = await cluster.start("b", a)
            await wait_until(_all_alive([a, b]), timeout=10, what="b admitted")
            assert a.state_of(rogue.peer_id) is None


@pytest.mark.network
async def test_a_new_mesh_peer_is_announced_to_at_once(tmp_path: Path) -> None:
    # Nothing else would make a publish now: no refresh, and changes held back for a
    # long time. Only the announcement to a peer new to our mesh goes out, without
    # waiting for min_publish_interval (issue 13: 1 s of a joiner's time to agreement).
    slow = dataclasses.replace(DEVNET, refresh_period=1000.0, min_publish_interval=1000.0)
    async with _cluster(tmp_path, slow) as cluster:
        a = await cluster.start("a")
        first = a.sample("chorus_gossip_published_total")
        b = await cluster.start("b", a)
        await wait_until(
            lambda: a.sample("chorus_gossip_published_total") > first,
            timeout=10,
            what="a announces itself to its new mesh peer",
        )
        await wait_until(_all_alive([a, b]), timeout=10, what="both know both")
