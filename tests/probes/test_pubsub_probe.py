"""The active PubSub probe: wire format, rate limits, probe logic on fakes, real hosts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from prometheus_client import CollectorRegistry

from adapters.libp2p_host import P2PConfig, P2PNode, open_p2p_node
from adapters.metrics import probe_stream_metrics
from adapters.pubsub import InMemoryPubSub, InMemoryPubSubNetwork, PubSubMessage
from devnet.rogue import RoguePeer
from mesh.model import CheckResult
from probes.pubsub_probe import (
    ACK_PROTOCOL,
    STREAM_DROP_REASONS,
    TOPIC,
    Ack,
    InMemoryLink,
    InMemoryLinkNetwork,
    LibP2PLink,
    ProbeMessage,
    ProbeResponder,
    PubSubProbe,
    RateLimiter,
    TokenBucket,
    WireError,
    active_pubsub_check,
    decode_ack,
    decode_probe,
    probe_for_node,
)

NONCE = "ab" * 16
SHA = hashlib.sha256(b"payload").hexdigest()


def _probe_json(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "v": 1,
        "nonce": NONCE,
        "origin": "A",
        "sent_at": 1.5,
        "payload": "cGF5bG9hZA==",  # b"payload"
        "payload_sha256": SHA,
        "responders": ["B", "C"],
    }
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


# -------------------------------------------------------------------------- wire


def test_probe_round_trips_and_ignores_unknown_fields() -> None:
    msg = ProbeMessage(NONCE, "A", 1.5, b"payload", SHA, ("B", "C"))
    assert decode_probe(msg.encode()) == msg
    assert decode_probe(_probe_json(extra="later versions may add fields")) == msg
    assert decode_ack(Ack(NONCE, SHA).encode()) == Ack(NONCE, SHA)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"[" * 1500,  # deeper than json's recursion limit
        _probe_json(v=2),
        _probe_json(v=...),
        _probe_json(nonce="AB" * 16),
        _probe_json(nonce="ab"),
        _probe_json(payload_sha256="0" * 63),
        _probe_json(payload="not base64!"),
        _probe_json(payload="QUFB" * 200),  # 600 bytes > 512
        _probe_json(responders=["x"] * 17),
        _probe_json(responders=[1]),
        _probe_json(sent_at=True),
        _probe_json(origin=None),
        _probe_json(pad="x" * 2048),
    ],
)
def test_malformed_probes_are_rejected(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_probe(data)


def test_deeply_nested_json_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        decode_ack(b"[" * 1000)


# ------------------------------------------------------------------ rate limits


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0.0, 0.0, 0.0], [True, True, False]),  # burst of 2
        ([0.0, 0.0, 0.5], [True, True, True]),  # 2/s: one token back after 0.5 s
        ([0.0, 0.0, 0.4], [True, True, False]),
        ([0.0, 10.0, 10.0, 10.0], [True, True, True, False]),  # refills to burst, not beyond
        ([5.0, 5.0, 1.0], [True, True, False]),  # a clock stepping back mints nothing
    ],
)
def test_token_bucket(times: list[float], expected: list[bool]) -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, now=times[0])
    assert [bucket.take(t) for t in times] == expected


def test_rate_limiter_per_key_then_global() -> None:
    limiter = RateLimiter(rate=1.0, burst=3.0, per_key_rate=1.0, per_key_burst=2.0)
    assert [limiter.allow("A", 0.0) for _ in range(3)] == [True, True, False]
    # A's refusal spent no global token: B still gets the third one.
    assert [limiter.allow("B", 0.0) for _ in range(2)] == [True, False]


def test_rate_limiter_forgets_least_recent_keys() -> None:
    limiter = RateLimiter(rate=100, burst=100, per_key_rate=0.001, per_key_burst=1, max_keys=2)
    assert limiter.allow("A", 0.0) and limiter.allow("B", 0.0) and limiter.allow("C", 0.0)
    assert limiter.allow("A", 0.0)  # evicted, so a fresh bucket: bounded memory wins
    assert not limiter.allow("C", 0.0)


# ----------------------------------------------------------------- fake cluster


class FakeCluster:
    def __init__(self, names: str) -> None:
        self.pubsub_net = InMemoryPubSubNetwork()
        self.link_net = InMemoryLinkNetwork()
        self.pubsub: dict[str, InMemoryPubSub] = {}
        self.links: dict[str, InMemoryLink] = {}
        for name in names:
            self.pubsub[name] = self.pubsub_net.attach(name)
            self.links[name] = self.link_net.attach(name)
        self.responders: dict[str, ProbeResponder] = {}

    def probe(self, name: str, **options: Any) -> PubSubProbe:
        options.setdefault("rng", random.Random(7))
        return PubSubProbe(self.pubsub[name], self.links[name], **options)

    async def start_responders(self, nursery: trio.Nursery, names: str, **options: Any) -> None:
        for name in names:
            responder = ProbeResponder(self.pubsub[name], self.links[name], **options)
            self.responders[name] = responder
            await nursery.start(responder.run)

    def isolate(self, name: str) -> None:
        self.pubsub_net.set_reachable(name, False)
        self.link_net.set_reachable(name, False)


@asynccontextmanager
async def running(names: str, responders: str) -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster(names)
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, responders)
        yield cluster
        nursery.cancel_scope.cancel()


async def test_named_peers_answer_and_only_they(autojump_clock: trio.abc.Clock) -> None:
    async with running("ABCDE", responders="ABCDE") as cluster:
        probe = cluster.probe("A")
        outcome = await probe.run()

    assert outcome.healthy
    assert len(outcome.named) == 3 and "A" not in outcome.named
    assert sorted(outcome.answered) == sorted(outcome.named)
    assert outcome.corrupted == ()
    assert outcome.latency == 0.0  # fakes deliver at once under the mock clock
    result = outcome.result()
    assert result.details["responders_named"] == 3
    assert sorted(result.details["responders_answered"]) == sorted(outcome.named)
    assert result.details["corrupted"] == 0
    assert result.details["latency_ms"] == 0.0
    # Only named peers answered; the origin never answered itself.
    senders = {name for name, link in cluster.links.items() if link.sent}
    assert senders == set(outcome.named)
    assert cluster.responders["A"].drops["own"] == 1
    unnamed = set("BCDE") - set(outcome.named)
    assert all(cluster.responders[n].drops["not_named"] == 1 for n in unnamed)


async def test_isolated_node_fails_without_publishing(autojump_clock: trio.abc.Clock) -> None:
    async with running("AB", responders="AB") as cluster:
        cluster.isolate("A")
        result = (await cluster.probe("A").run()).result()

    assert not result.healthy
    assert result.message == "no connected peers to answer the probe"
    assert cluster.pubsub_net.published == []


async def test_silent_peers_time_out_at_the_wait(autojump_clock: trio.abc.Clock) -> None:
    async with running("ABCD", responders="") as cluster:
        start = trio.current_time()
        result = (await cluster.probe("A").run()).result()
        assert trio.current_time() - start == 10.0

    assert not result.healthy
    assert result.message == "no answer from 3 named peers within 10s"
    assert result.details["responders_answered"] == []
    assert result.details["latency_ms"] is None


async def test_after_first_answer_others_get_only_the_grace(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("ABCD", responders="B") as cluster:
        probe = cluster.probe("A", responders=3, grace=1.0)
        start = trio.current_time()
        outcome = await probe.run()
        assert trio.current_time() - start == 1.0

    assert outcome.healthy
    assert outcome.answered == ("B",)
    assert outcome.message.startswith("1 of 3 named peers answered")


def _liar(cluster: FakeCluster, name: str) -> Callable[[PubSubMessage], Any]:
    """A hostile responder that answers every probe naming it with a wrong hash."""

    async def answer(msg: PubSubMessage) -> None:
        probe = decode_probe(msg.data)
        if name in probe.responders:
            wrong = Ack(probe.nonce, hashlib.sha256(b"something else").hexdigest())
            await cluster.links[name].send(probe.origin, ACK_PROTOCOL, wrong.encode())

    return answer


async def test_corrupted_answer_alone_fails_as_corruption(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("AB", responders="") as cluster:
        await cluster.pubsub["B"].subscribe(TOPIC, _liar(cluster, "B"))
        result = (await cluster.probe("A").run()).result()

    assert not result.healthy
    assert "1 named peer(s) answered with a corrupted payload hash: B" in result.message
    assert result.details["corrupted"] == 1
    assert result.details["responders_answered"] == []


async def test_corrupted_answer_beside_a_good_one_passes_but_is_reported(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("ABC", responders="C") as cluster:
        await cluster.pubsub["B"].subscribe(TOPIC, _liar(cluster, "B"))
        result = (await cluster.probe("A").run()).result()

    assert result.healthy
    assert result.details["responders_answered"] == ["C"]
    assert result.details["corrupted"] == 1
    assert "corrupted payload hash: B" in result.message


async def test_unexpected_answers_are_counted_and_ignored(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = FakeCluster("ABC")
    probe = cluster.probe("A", responders=1, rng=random.Random(0))
    link_c = cluster.links["C"]
    await link_c.send("A", ACK_PROTOCOL, b"garbage")
    await link_c.send("A", ACK_PROTOCOL, Ack(NONCE, SHA).encode())  # unknown nonce
    assert probe.unexpected_answers == 2
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "BC")
        outcome = await probe.run(wait=2.0)
        nursery.cancel_scope.cancel()
    assert len(outcome.named) == 1 and outcome.healthy


async def test_topic_peers_narrow_the_responders(autojump_clock: trio.abc.Clock) -> None:
    async with running("ABC", responders="ABC") as cluster:
        only_b = cluster.probe("A", topic_peers=lambda: ["B", "Z"])
        assert (await only_b.run()).named == ("B",)
        nobody = cluster.probe("A", topic_peers=lambda: [])
        outcome = await nobody.run()
    assert outcome.message == f"none of 2 connected peers subscribes to {TOPIC}"


# ------------------------------------------------------------------- responder


def sink(link: InMemoryLink) -> list[tuple[str, Ack]]:
    """Make ``link`` accept probe answers; returns the list they are decoded into."""
    got: list[tuple[str, Ack]] = []

    async def on_answer(sender: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        got.append((sender, decode_ack(data)))

    link.set_handler(ACK_PROTOCOL, on_answer)
    return got


async def _publish_raw(pubsub: InMemoryPubSub, **changes: Any) -> None:
    await pubsub.publish(TOPIC, _probe_json(**changes))


async def test_responder_guards(autojump_clock: trio.abc.Clock) -> None:
    async with running("ABX", responders="B") as cluster:
        answers = sink(cluster.links["X"])
        b = cluster.responders["B"]
        x = cluster.pubsub["X"]
        await _publish_raw(x, origin="A")  # X claims to be A
        await _publish_raw(x, origin="X", responders=["C"])
        await _publish_raw(x, origin="X", nonce="01" * 16)
        await _publish_raw(x, origin="X", nonce="01" * 16)  # re-signed replay
        await x.publish(TOPIC, b"garbage")
        await trio.testing.wait_all_tasks_blocked()

    # Forged and garbage probes fail B's validator before its handler sees them.
    assert b.drops == {"not_named": 1, "duplicate": 1}
    assert b.answered == 1
    assert answers == [("B", Ack("01" * 16, SHA))]


async def test_responder_rate_limits_and_skips_unconnected_origins(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = FakeCluster("BX")
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(
            nursery, "B", per_origin_per_second=1.0, per_origin_burst=2.0
        )
        sink(cluster.links["X"])
        b, x = cluster.responders["B"], cluster.pubsub["X"]
        for i in range(4):
            await _publish_raw(x, origin="X", nonce=f"{i:032x}", responders=["B"])
        await trio.testing.wait_all_tasks_blocked()
        assert (b.answered, b.drops["rate_limited"]) == (2, 2)
        await trio.sleep(1.0)  # a token comes back
        await _publish_raw(x, origin="X", nonce="f" * 32, responders=["B"])
        await trio.testing.wait_all_tasks_blocked()
        assert b.answered == 3
        cluster.link_net.set_reachable("X", False)  # pubsub still carries, no connection
        await _publish_raw(x, origin="X", nonce="e" * 32, responders=["B"])
        await trio.testing.wait_all_tasks_blocked()
        assert b.drops["not_connected"] == 1
        nursery.cancel_scope.cancel()


async def test_responder_survives_a_failing_link(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("BX")
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        # X publishes but speaks no answer protocol: the send fails, B carries on.
        await _publish_raw(cluster.pubsub["X"], origin="X", responders=["B"])
        await trio.testing.wait_all_tasks_blocked()
        assert cluster.responders["B"].drops["send_failed"] == 1
        nursery.cancel_scope.cancel()


def test_active_check_has_the_reference_properties() -> None:
    cluster = FakeCluster("A")
    check = active_pubsub_check(cluster.probe("A"))
    assert (check.critical, check.interval, check.timeout, check.component) == (
        False,
        60.0,
        15.0,
        "pubsub",
    )


async def test_active_check_result(autojump_clock: trio.abc.Clock) -> None:
    async with running("AB", responders="AB") as cluster:
        result = await active_pubsub_check(cluster.probe("A")).checker()
    assert isinstance(result, CheckResult) and result.healthy


# -------------------------------------------------------------------- real hosts


@asynccontextmanager
async def real_cluster(
    tmp_path: Path, count: int
) -> AsyncIterator[list[tuple[P2PNode, PubSubProbe, ProbeResponder]]]:
    """``count`` nodes, each bootstrapped to the first, each with a probe and responder."""
    async with AsyncExitStack() as stack:
        nodes: list[P2PNode] = []
        for i in range(count):
            boot = (nodes[0].listen_addrs[0],) if nodes else ()
            cfg = P2PConfig(key_file=tmp_path / f"n{i}.key", listen_port=0, bootstrap=boot)
            nodes.append(await stack.enter_async_context(open_p2p_node(cfg)))
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        kits = []
        for node in nodes:
            probe, responder = probe_for_node(node)
            await nursery.start(responder.run)
            kits.append((node, probe, responder))
        yield kits


async def _meshed(origin: P2PNode, peers: list[P2PNode]) -> None:
    """Until the origin's GossipSub mesh for the probe topic holds every peer."""
    want = {p.host.get_id() for p in peers}
    mesh = origin.guarded_pubsub.router.mesh  # type: ignore[attr-defined]
    # Polling: GossipSub's mesh changes on its heartbeat and has no event to wait on.
    with trio.fail_after(10):
        while not want <= set(mesh.get(TOPIC, ())):  # noqa: ASYNC110
            await trio.sleep(0.05)


@pytest.mark.network
async def test_real_probe_is_answered_by_named_peers(tmp_path: Path) -> None:
    async with real_cluster(tmp_path, 3) as kits:
        (a, probe, _), (b, _, rb), (c, _, rc) = kits
        await _meshed(a, [b, c])
        with trio.fail_after(15):
            outcome = await probe.run()
        assert outcome.healthy, outcome.message
        assert set(outcome.named) == {b.peer_id, c.peer_id}
        assert set(outcome.answered) == set(outcome.named)
        assert outcome.latency is not None and outcome.latency < 5.0
        assert rb.answered == rc.answered == 1


@pytest.mark.network
async def test_real_isolated_node_fails(tmp_path: Path) -> None:
    async with real_cluster(tmp_path, 1) as [(_, probe, _)]:
        result = (await probe.run()).result()
    assert not result.healthy
    assert result.message == "no connected peers to answer the probe"


@pytest.mark.network
async def test_real_hostile_answers_do_not_kill_the_node(tmp_path: Path) -> None:
    async with real_cluster(tmp_path, 2) as kits:
        (a, probe, _), (b, _, _) = kits
        await _meshed(a, [b])
        junk = (b"\x00\xff" * 100, b'{"v":1}', b"[" * 900, b"x" * 5000)
        for data in junk:
            stream = await b.host.new_stream(ID.from_base58(a.peer_id), [TProtocol(ACK_PROTOCOL)])
            with contextlib.suppress(Exception):  # a resets the oversize one mid-write
                await stream.write(data)
                await stream.close()
        assert isinstance(probe.link, LibP2PLink)
        link = probe.link
        # Polling: the handlers run on a's side with nothing to wait on here.
        with trio.fail_after(10):
            while probe.unexpected_answers < 3 or not link.dropped:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert link.dropped == {"too_large": 1}
        with trio.fail_after(15):
            outcome = await probe.run()
        assert outcome.healthy, outcome.message


async def _until(cond: Callable[[], bool], within: float = 10.0) -> None:
    # Polling: the link's counters are updated by handlers with no event to wait on.
    with trio.fail_after(within):
        while not cond():  # noqa: ASYNC110
            await trio.sleep(0.02)


@pytest.mark.network
async def test_real_link_refuses_streams_beyond_its_per_peer_and_global_limits(
    tmp_path: Path,
) -> None:
    async with real_cluster(tmp_path, 3) as kits, trio.open_nursery() as nursery:
        (a, _, _), (b, _, _), (c, _, _) = kits
        protocol = "/chorus-test/held/1.0.0"
        link = LibP2PLink(a.host, max_inbound=3, max_inbound_per_peer=2, read_timeout=60)
        link.set_handler(protocol, _ignore)
        rogue_b, rogue_c = RoguePeer(b, nursery, {}), RoguePeer(c, nursery, {})
        async with rogue_b.hold_streams(a.peer_id, protocol, 3) as held_b:
            # b may hold 2; its third is refused at once, as over its share.
            await held_b.until_ended(1)
            assert link.dropped == {"per_peer": 1}
            assert link.inbound_from(b.peer_id) == 2
            async with rogue_c.hold_streams(a.peer_id, protocol, 2) as held_c:
                # c is within its share, but a reads only 3 streams at once.
                await held_c.until_ended(1)
                assert link.dropped == {"per_peer": 1, "global": 1}
                assert link.inbound_from(c.peer_id) == 1
            # Streams the peer gives up on free their slots.
            await _until(lambda: link.inbound_from(c.peer_id) == 0)
        await _until(lambda: link.inbound_from(b.peer_id) == 0)
        nursery.cancel_scope.cancel()

    registry = CollectorRegistry()
    probe_stream_metrics(registry, link.dropped, STREAM_DROP_REASONS)
    name = "chorus_probe_streams_dropped_total"
    assert registry.get_sample_value(name, {"reason": "per_peer"}) == 1
    assert registry.get_sample_value(name, {"reason": "global"}) == 1
    assert registry.get_sample_value(name, {"reason": "timeout"}) == 0


@pytest.mark.network
async def test_real_link_frees_the_slot_of_a_stalled_stream(tmp_path: Path) -> None:
    async with real_cluster(tmp_path, 2) as kits, trio.open_nursery() as nursery:
        (a, _, _), (b, _, _) = kits
        protocol = "/chorus-test/held/1.0.0"
        got: list[bytes] = []
        arrived = trio.Event()

        async def record(sender: str, data: bytes) -> None:
            got.append(data)
            arrived.set()

        link = LibP2PLink(a.host, max_inbound=1, max_inbound_per_peer=1, read_timeout=0.5)
        link.set_handler(protocol, record)
        async with RoguePeer(b, nursery, {}).hold_streams(
            a.peer_id, protocol, 2, data=b'{"v":1'
        ) as held:
            # One refused at once, the other reset once the read timeout is up.
            await held.until_ended(2)
            assert link.dropped == {"per_peer": 1, "timeout": 1}
            # The slot is free again (just after the reset went out): a whole message
            # gets through.
            await _until(lambda: link.inbound_from(b.peer_id) == 0)
            b_link = LibP2PLink(b.host)
            with trio.fail_after(10):
                await b_link.send(a.peer_id, protocol, b"whole")
                await arrived.wait()
            assert got == [b"whole"]
        nursery.cancel_scope.cancel()


async def _ignore(sender: str, data: bytes) -> None:
    await trio.lowlevel.checkpoint()


def test_link_needs_a_per_peer_limit_within_the_global_one() -> None:
    with pytest.raises(ValueError, match="max_inbound_per_peer"):
        LibP2PLink(None, max_inbound=2, max_inbound_per_peer=3)  # type: ignore[arg-type]
