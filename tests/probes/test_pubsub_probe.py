"""The active PubSub probe: wire format, rate limits, probe logic on fakes, real hosts."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr  # type: ignore[import-untyped]  # ships no py.typed
from prometheus_client import CollectorRegistry

from adapters.libp2p_host import open_p2p_node
from adapters.libp2p_link import LibP2PLink, probe_for_node
from adapters.metrics import probe_stream_metrics
from adapters.p2p_config import GOSSIPSUB_PROTOCOLS, P2PConfig
from adapters.p2p_node import P2PNode
from adapters.pubsub import InMemoryPubSub, InMemoryPubSubNetwork
from devnet.rogue import RoguePeer
from mesh.digest import TOPIC as DIGEST_TOPIC
from mesh.manager import CheckManager
from mesh.model import CheckResult, Status
from probes.enhanced import EnhancedHealthChecks
from probes.memory_link import InMemoryLink, InMemoryLinkNetwork
from probes.ports import STREAM_DROP_REASONS, LinkError, PubSubMessage
from probes.probe_responder import DEFAULT_SEND_TIMEOUT, ProbeResponder
from probes.probe_wire import (
    ACK_PROTOCOL,
    TOPIC,
    Ack,
    ProbeMessage,
    WireError,
    decode_ack,
    decode_probe,
    responder_tag,
)
from probes.pubsub_probe import ProbeOutcome, PubSubProbe, active_pubsub_check
from probes.rate_limit import RateLimiter, TokenBucket

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


def _probe_v2(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "v": 2,
        "n": NONCE,
        "t": 1.5,
        "p": "cGF5bG9hZA==",  # b"payload"
        "r": [responder_tag("B"), responder_tag("C")],
    }
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def test_probe_round_trips_and_ignores_unknown_fields() -> None:
    msg = ProbeMessage(NONCE, "A", 1.5, b"payload", SHA, ("B", "C"))
    received = decode_probe(msg.encode(), "A")
    tags = (responder_tag("B"), responder_tag("C"))
    assert received == dataclasses.replace(msg, responders=tags)
    assert received.names("B") and received.names("C") and not received.names("A")
    assert decode_probe(_probe_v2(extra="later versions may add fields"), "A") == received
    assert decode_ack(Ack(NONCE, SHA).encode()) == Ack(NONCE, SHA)


def test_version_1_probes_are_still_read() -> None:
    msg = ProbeMessage(NONCE, "A", 1.5, b"payload", SHA, ("B", "C"))
    received = decode_probe(_probe_json(extra="ignored"), "signer")
    assert received == msg  # its own origin: the responder compares it with the signer
    assert received.names("B") and not received.names("D")


def test_version_2_is_less_than_half_of_version_1() -> None:
    peers = tuple(f"12D3KooW{i}" + "x" * 44 for i in range(4))
    msg = ProbeMessage(NONCE, peers[0], 1764800000.123456, bytes(32), SHA, peers[1:])
    v1 = _probe_json(origin=peers[0], responders=list(peers[1:]), payload="A" * 44)
    assert len(msg.encode()) * 2 < len(v1)
    # The origin and the payload's hash come from the signer and the payload.
    received = decode_probe(msg.encode(), peers[0])
    assert received.origin == peers[0]
    assert received.payload_sha256 == hashlib.sha256(bytes(32)).hexdigest()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"[" * 1500,  # deeper than json's recursion limit
        _probe_json(v=3),
        _probe_json(v=True),
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
        _probe_json(v=2),  # version 1 field names under version 2
        _probe_v2(n="ab"),
        _probe_v2(t="now"),
        _probe_v2(p="QUFB" * 200),
        _probe_v2(r=["B"]),  # a peer id where a tag belongs
        _probe_v2(r=["0" * 16] * 17),
        _probe_v2(r=...),
        _probe_v2(pad="x" * 2048),
        _probe_v2(t=10**400),  # float() overflows
        _probe_json(sent_at=10**400),
        b'{"v":2,"n":"' + NONCE.encode() + b'","t":NaN,"p":"cGF5bG9hZA==","r":[]}',
        _probe_v2(t=float("inf")),
        _probe_v2(n=NONCE + "\n"),  # a pattern anchored with $ lets a newline through
        _probe_v2(r=["0" * 16 + "\n"]),
    ],
)
def test_malformed_probes_are_rejected(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_probe(data, "A")


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
    def __init__(self, names: Iterable[str], *, non_mesh: Iterable[str] = ()) -> None:
        """Mesh nodes ``names``, plus ``non_mesh`` peers that say (identify) nothing of
        the answer protocol: a Go or JS libp2p peer beside the mesh (issue 14)."""
        self.pubsub_net = InMemoryPubSubNetwork()
        self.link_net = InMemoryLinkNetwork()
        self.pubsub: dict[str, InMemoryPubSub] = {}
        self.links: dict[str, InMemoryLink] = {}
        for name in names:
            self.pubsub[name] = self.pubsub_net.attach(name)
            self.links[name] = self.link_net.attach(name)
        for name in non_mesh:
            self.pubsub[name] = self.pubsub_net.attach(name)
            self.links[name] = self.link_net.attach(name, protocols=())
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
async def running(names: str, responders: str, non_mesh: str = "") -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster(names, non_mesh=non_mesh)
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
        probe = decode_probe(msg.data, msg.from_peer)
        if probe.names(name):
            wrong = Ack(probe.nonce, hashlib.sha256(b"something else").hexdigest())
            await cluster.links[name].send(probe.origin, ACK_PROTOCOL, wrong.encode())

    return answer


async def test_a_probe_naming_a_peer_of_an_older_build_is_version_1(
    autojump_clock: trio.abc.Clock,
) -> None:
    # mesh/wire_level.py: a named peer whose digest says it reads no version 2 gets a
    # probe it can read, and answers it; once all named peers read version 2, it is that.
    async with running("ABCD", responders="BCD") as cluster:
        seen: list[int] = []

        async def spy(msg: PubSubMessage) -> None:
            seen.append(json.loads(msg.data)["v"])

        await cluster.pubsub["B"].subscribe(TOPIC, spy)
        levels = {"B": 2, "C": 0, "D": 2}
        probe = cluster.probe("A", wire_level=lambda peer: levels.get(peer, 0))
        assert (await probe.run()).healthy
        levels["C"] = 2
        assert (await probe.run()).healthy
    assert seen == [1, 2]


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
    probe = cluster.probe("A", topic_peers=lambda: ["B"])
    link_b, link_c = cluster.links["B"], cluster.links["C"]

    async def hostile_b(msg: PubSubMessage) -> None:
        # B is named: its garbage and its answer to an unknown nonce reach the probe, which
        # counts and ignores them; then it answers properly.
        sent = decode_probe(msg.data, msg.from_peer)
        await link_b.send("A", ACK_PROTOCOL, b"garbage")
        await link_b.send("A", ACK_PROTOCOL, Ack(NONCE, SHA).encode())
        right = Ack(sent.nonce, hashlib.sha256(sent.payload).hexdigest())
        await link_b.send("A", ACK_PROTOCOL, right.encode())

    await cluster.pubsub["B"].subscribe(TOPIC, hostile_b)
    outcome = await probe.run(wait=2.0)
    assert outcome.named == ("B",) and outcome.healthy
    assert probe.unexpected_answers == 2
    assert cluster.links["A"].dropped == {}
    # C was never named: it may not even open an answer stream.
    with pytest.raises(LinkError):
        await link_c.send("A", ACK_PROTOCOL, Ack(NONCE, SHA).encode())
    assert cluster.links["A"].dropped == {"unexpected": 1}


async def test_topic_peers_narrow_the_responders(autojump_clock: trio.abc.Clock) -> None:
    async with running("ABC", responders="ABC") as cluster:
        only_b = cluster.probe("A", topic_peers=lambda: ["B", "Z"])
        assert (await only_b.run()).named == ("B",)
        nobody = cluster.probe("A", topic_peers=lambda: [])
        outcome = await nobody.run()
    assert outcome.message == f"none of 2 connected peers subscribes to {TOPIC}"


async def test_peers_that_are_not_mesh_nodes_are_never_named(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("AB", responders="AB", non_mesh="GH") as cluster:
        # G and H subscribe to the probe topic like any CHORUS Go peer may, and never answer.
        for name in "GH":
            await cluster.pubsub[name].subscribe(TOPIC, _ignore_message)
        probe = cluster.probe("A", topic_peers=lambda: ["B", "G", "H"])
        outcomes = [await probe.run() for _ in range(3)]  # within B's burst of 3

    assert all(o.named == ("B",) and o.answered == ("B",) for o in outcomes)
    result = outcomes[0].result()
    assert result.healthy and not result.warning
    assert result.message.startswith("1 of 1 named peers answered")
    assert result.details["non_mesh_peers"] == 2 and result.details["connected_peers"] == 3


async def test_only_non_mesh_peers_is_a_warning_not_a_pass(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("A", responders="A", non_mesh="G") as cluster:
        await cluster.pubsub["G"].subscribe(TOPIC, _ignore_message)
        start = trio.current_time()
        result = (await cluster.probe("A").run()).result()
        assert trio.current_time() == start  # nobody to wait for

    assert not result.healthy and result.warning
    assert result.message == f"no peer speaks {ACK_PROTOCOL}: 1 connected peer is not a mesh node"
    assert cluster.pubsub_net.published == []


async def test_mesh_peers_off_the_topic_beside_non_mesh_ones_fail_plainly(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A mesh peer is there but not (yet) subscribed: that is our network's trouble.
    async with running("AB", responders="", non_mesh="GH") as cluster:
        result = (await cluster.probe("A", topic_peers=lambda: ["G", "H"]).run()).result()
    assert not result.healthy and not result.warning
    assert result.message == (
        f"none of 1 connected peers subscribes to {TOPIC}; 2 connected peers are not mesh nodes"
    )


async def _ignore_message(msg: PubSubMessage) -> None:
    await trio.lowlevel.checkpoint()


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
            await trio.testing.wait_all_tasks_blocked()  # answered: none pending
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


# ------------------------------------------------ hostile origins (issue 12, route A)
#
# A stranger mints identities for free and publishes probes that name a responder, so that
# the responder answers it. Answers to an origin that never finishes the answer stream
# (it stalls protocol negotiation; py-libp2p's own timeout is 30 s) once held both
# workers for 5 s each and filled the queue: honest origins got ``queue_full``. Many
# identities within their per-origin budget drained the shared budget instead (route A').


def _stall(link: InMemoryLink) -> None:
    """Make ``link`` accept answer streams and never finish them (a slowloris origin)."""

    async def never(sender: str, data: bytes) -> None:
        await trio.sleep_forever()

    link.set_handler(ACK_PROTOCOL, never)


def _timed_sink(link: InMemoryLink) -> list[float]:
    """Make ``link`` accept probe answers; returns the times they arrive at."""
    times: list[float] = []

    async def on_answer(sender: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        times.append(trio.current_time())

    link.set_handler(ACK_PROTOCOL, on_answer)
    return times


async def _probe_b(cluster: FakeCluster, origin: str, nonce: int) -> None:
    await _publish_raw(
        cluster.pubsub[origin], origin=origin, nonce=f"{nonce:032x}", responders=["B"]
    )


async def _strangers_probe_b(
    cluster: FakeCluster, strangers: list[str], *, seconds: int, per_second: float
) -> None:
    """Each stranger probes B at ``per_second``, spread evenly, for ``seconds``."""
    start = trio.current_time()
    count = int(seconds * per_second) * len(strangers)
    for i in range(count):  # bounded: seconds x rate x identities
        await trio.sleep_until(start + i / (per_second * len(strangers)))
        await _probe_b(cluster, strangers[i % len(strangers)], 10_000 + i)


def _grown(items: list[float], size: int) -> bool:
    return len(items) > size


async def _honest_probes_of_b(
    cluster: FakeCluster, times: list[float], at: list[float]
) -> list[float]:
    """H probes B at the times ``at``; returns how long each answer took (inf: none in 1 s)."""
    took: list[float] = []
    for when in at:
        await trio.sleep_until(when)
        before = len(times)
        await _probe_b(cluster, "H", round(when * 1000))  # a fresh nonce for each
        with contextlib.suppress(trio.TooSlowError):
            await _until(partial(_grown, times, before), within=1.0, step=0.01)
        took.append(times[before] - when if len(times) > before else float("inf"))
    return took


async def test_stalling_origins_do_not_keep_honest_answers_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Three: each stranger holds at most two stalled answers (2 s each), so two of them
    # ask about as much as the new-origin budget refills (1 a second), and whether it
    # ever ran dry hung on the order of same-instant wake-ups (about 1 run in 20). Three
    # ask half again as much: the budget runs dry in every run.
    strangers = ["S0", "S1", "S2"]
    cluster = FakeCluster(["B", "H", *strangers])
    for name in strangers:
        _stall(cluster.links[name])
    times = _timed_sink(cluster.links["H"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        b = cluster.responders["B"]
        # H and B have talked before the attack: H took an answer in full.
        assert await _honest_probes_of_b(cluster, times, [trio.current_time()]) == [0.0]
        start = trio.current_time()
        nursery.start_soon(
            partial(_strangers_probe_b, cluster, strangers, seconds=20, per_second=1.0)
        )
        took = await _honest_probes_of_b(cluster, times, [start + 5.0 + 2 * i for i in range(6)])
        assert took == [0.0] * 6
        # The strangers' answers stall in a queue of their own, as many as the new-origin
        # budget lets in; none of them ever filled the queue honest answers go through.
        assert b.drops["new_origins"] > 0 and b.drops["send_failed"] > 0
        assert b.drops["queue_full"] == 0
        nursery.cancel_scope.cancel()


async def test_an_origin_has_at_most_two_answers_pending(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("BX")
    _stall(cluster.links["X"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        b = cluster.responders["B"]
        start = trio.current_time()
        for i in range(3):
            await _probe_b(cluster, "X", i)
        await trio.testing.wait_all_tasks_blocked()
        assert b.drops == {"pending": 1}
        # The stalled answers are given up after the send timeout, to the millisecond.
        await _until(
            lambda: b.drops["send_failed"] == 2, within=DEFAULT_SEND_TIMEOUT + 0.1, step=0.001
        )
        assert trio.current_time() - start == pytest.approx(DEFAULT_SEND_TIMEOUT, abs=0.001)
        await trio.sleep(1.0)  # a per-origin token back
        await _probe_b(cluster, "X", 3)
        await trio.testing.wait_all_tasks_blocked()
        assert b.drops == {"pending": 1, "send_failed": 2}  # accepted again: none pending
        nursery.cancel_scope.cancel()


async def test_both_probes_an_origin_runs_at_once_are_answered(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The active and the enhanced check start together every minute, and from a node
    # start: both probes name the same peers at the same moment.
    async with running("AB", responders="B") as cluster:
        probe = cluster.probe("A")
        for _ in range(2):  # the first meeting (A is new to B), then a proven A
            async with trio.open_nursery() as nursery:
                outcomes: list[ProbeOutcome] = []

                async def one() -> None:
                    outcomes.append(await probe.run(wait=1.0))  # noqa: B023

                nursery.start_soon(one)
                nursery.start_soon(one)
            assert [o.answered for o in outcomes] == [("B",), ("B",)]
            await trio.sleep(2.0)  # A's own budget (1 a second) refills
        assert cluster.responders["B"].drops == {}


async def test_many_identities_do_not_drain_the_answer_budget(
    autojump_clock: trio.abc.Clock,
) -> None:
    # 40 identities at their per-origin rate ask 8 times the shared budget. They never
    # take an answer (they do not speak the answer protocol), so they stay new origins.
    strangers = [f"S{i}" for i in range(40)]
    cluster = FakeCluster(["B", "H", *strangers])
    times = _timed_sink(cluster.links["H"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        b = cluster.responders["B"]
        assert await _honest_probes_of_b(cluster, times, [trio.current_time()]) == [0.0]
        start = trio.current_time()
        nursery.start_soon(
            partial(_strangers_probe_b, cluster, strangers, seconds=12, per_second=1.0)
        )
        took = await _honest_probes_of_b(cluster, times, [start + 2.0 + 1.01 * i for i in range(8)])
        assert took == [0.0] * 8
        assert b.drops["new_origins"] > 0
        nursery.cancel_scope.cancel()


async def test_unwanted_origins_are_refused_before_any_budget(
    autojump_clock: trio.abc.Clock,
) -> None:
    # With a predicate (the node's: "a member of the cluster view"), strangers that take
    # their answers in full are still refused, and never spend a token or a worker.
    strangers = [f"S{i}" for i in range(40)]
    cluster = FakeCluster(["B", "H", *strangers])
    for name in strangers:
        sink(cluster.links[name])
    times = _timed_sink(cluster.links["H"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B", wanted=lambda origin: origin == "H")
        b = cluster.responders["B"]
        start = trio.current_time()
        nursery.start_soon(
            partial(_strangers_probe_b, cluster, strangers, seconds=10, per_second=1.0)
        )
        took = await _honest_probes_of_b(cluster, times, [start + 1.01 * i for i in range(8)])
        assert took == [0.0] * 8
        await trio.sleep_until(start + 10.0)
        assert b.drops == {"unwanted": 400}
        assert b.answered == 8
        nursery.cancel_scope.cancel()


async def test_new_origins_are_served_at_their_own_rate(autojump_clock: trio.abc.Clock) -> None:
    origins = ["O0", "O1", "O2", "O3"]
    cluster = FakeCluster(["B", *origins])
    for name in origins:
        sink(cluster.links[name])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(
            nursery, "B", new_origins_per_second=1.0, new_origin_burst=2.0
        )
        b = cluster.responders["B"]
        for i, name in enumerate(origins):
            await _probe_b(cluster, name, i)
        await trio.testing.wait_all_tasks_blocked()
        assert (b.answered, b.drops) == (2, {"new_origins": 2})
        assert [b.proven(name) for name in origins] == [True, True, False, False]
        await trio.sleep(1.0)
        # O0 took an answer, so it is no longer new; one new origin a second gets through.
        for i, name in enumerate(["O0", "O2", "O3"]):
            await _probe_b(cluster, name, 10 + i)
        await trio.testing.wait_all_tasks_blocked()
        assert (b.answered, b.drops) == (4, {"new_origins": 3})
        nursery.cancel_scope.cancel()


async def test_an_origin_that_stalls_is_new_again(autojump_clock: trio.abc.Clock) -> None:
    cluster = FakeCluster("BX")
    sink(cluster.links["X"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        b = cluster.responders["B"]
        await _probe_b(cluster, "X", 0)
        await trio.testing.wait_all_tasks_blocked()
        assert b.proven("X")
        _stall(cluster.links["X"])
        await _probe_b(cluster, "X", 1)
        await _until(lambda: b.drops["send_failed"] == 1, within=DEFAULT_SEND_TIMEOUT + 0.1)
        assert b.drops == {"send_failed": 1}
        assert not b.proven("X")
        nursery.cancel_scope.cancel()


async def test_a_failing_predicate_is_counted_not_raised(autojump_clock: trio.abc.Clock) -> None:
    def broken(origin: str) -> bool:
        raise RuntimeError("view unavailable")

    cluster = FakeCluster("BX")
    sink(cluster.links["X"])
    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B", wanted=broken)
        await _probe_b(cluster, "X", 0)
        await trio.testing.wait_all_tasks_blocked()
        assert cluster.responders["B"].drops == {"error": 1}
        nursery.cancel_scope.cancel()


# ---------------------------------------------------- probe side (routes B and C)


async def test_only_named_peers_may_open_answer_streams(autojump_clock: trio.abc.Clock) -> None:
    # Route B: a stranger's answer streams never take one of the origin's slots.
    cluster = FakeCluster("ABC")
    probe = cluster.probe("A", topic_peers=lambda: ["B"])
    link_c = cluster.links["C"]
    refused: list[LinkError] = []

    async def intruder(msg: PubSubMessage) -> None:
        sent = decode_probe(msg.data, msg.from_peer)
        right = Ack(sent.nonce, hashlib.sha256(sent.payload).hexdigest())
        try:
            await link_c.send("A", ACK_PROTOCOL, right.encode())
        except LinkError as exc:
            refused.append(exc)

    async with trio.open_nursery() as nursery:
        await cluster.start_responders(nursery, "B")
        await cluster.pubsub["C"].subscribe(TOPIC, intruder)
        outcome = await probe.run(wait=2.0)
        nursery.cancel_scope.cancel()
    assert outcome.answered == ("B",)
    assert len(refused) == 1
    assert cluster.links["A"].dropped == {"unexpected": 1}


@pytest.mark.parametrize(
    "members",
    [{"B", "C", "D", "E"}, {"B"}, set()],
    ids=["enough members", "too few members", "no members yet"],
)
async def test_members_are_named_before_strangers(
    autojump_clock: trio.abc.Clock, members: set[str]
) -> None:
    # Route C: with strangers subscribed to the probe topic, a probe naming peers at random
    # would mostly name strangers, who never answer. Members come first; strangers only
    # fill the places members cannot (a view still filling after a start).
    cluster = FakeCluster("ABCDEFG")
    for seed in range(20):
        probe = cluster.probe(
            "A",
            wanted=members.__contains__,
            topic_peers=lambda: list("BCDEFG"),
            rng=random.Random(seed),
        )
        named = set((await probe.run(wait=0.1)).named)
        assert len(named) == 3
        assert named <= members if len(members) >= 3 else members <= named


# ------------------------------------------------------- the link's own checks


class _FakeStream:
    """Just enough of an INetStream for LibP2PLink's handler: ``data`` then EOF, or a read
    that blocks until ``release`` is set."""

    def __init__(self, sender: str, data: bytes = b"", *, blocked: bool = False) -> None:
        self.muxed_conn = SimpleNamespace(peer_id=SimpleNamespace(to_base58=lambda: sender))
        self._data = data
        self.release = trio.Event()
        if not blocked:
            self.release.set()
        self.was_reset = False

    async def read(self, n: int) -> bytes:
        await self.release.wait()
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk

    async def close(self) -> None:
        await trio.lowlevel.checkpoint()

    async def reset(self) -> None:
        await trio.lowlevel.checkpoint()
        self.was_reset = True


class _FakeHost:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any], Any]] = {}

    def get_id(self) -> Any:
        return SimpleNamespace(to_base58=lambda: "A")

    def set_stream_handler(self, protocol: str, handler: Callable[[Any], Any]) -> None:
        self.handlers[protocol] = handler


async def test_link_resets_unexpected_senders_before_they_take_a_slot() -> None:
    host = _FakeHost()
    link = LibP2PLink(host, max_inbound=1, max_inbound_per_peer=1)  # type: ignore[arg-type]
    got: list[tuple[str, bytes]] = []

    async def record(sender: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        got.append((sender, data))

    link.set_handler("/p", record, expected=lambda sender: sender in {"B", "C"})
    on_stream = host.handlers["/p"]
    async with trio.open_nursery() as nursery:
        held = _FakeStream("B", b"held", blocked=True)
        nursery.start_soon(on_stream, held)
        await trio.testing.wait_all_tasks_blocked()
        assert link.inbound_from("B") == 1  # the only slot is taken
        stranger = _FakeStream("X", b"hi")
        await on_stream(stranger)
        # Refused as unexpected, before the slots are even looked at.
        assert stranger.was_reset and link.dropped == {"unexpected": 1}
        named = _FakeStream("C", b"hi")
        await on_stream(named)
        assert named.was_reset and link.dropped == {"unexpected": 1, "global": 1}
        held.release.set()
    assert got == [("B", b"held")]


async def test_link_survives_a_failing_predicate() -> None:
    def broken(sender: str) -> bool:
        raise RuntimeError("no idea")

    host = _FakeHost()
    link = LibP2PLink(host)  # type: ignore[arg-type]
    link.set_handler("/p", _ignore, expected=broken)
    stream = _FakeStream("X", b"hi")
    await host.handlers["/p"](stream)
    assert stream.was_reset and link.dropped == {"error": 1}
    assert link.inbound_from("X") == 0


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


async def test_a_member_of_the_view_is_named_though_identify_forgot_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Minted identities can push a member's protocol list out of py-libp2p's peerstore:
    # the view's word that B is a member is enough to name it.
    async with running("A", responders="AB", non_mesh="B") as cluster:
        alone = await cluster.probe("A").run()
        assert alone.named == () and alone.non_mesh == 1
        outcome = await cluster.probe("A", wanted=lambda peer: peer == "B").run()
    assert outcome.named == ("B",) and outcome.healthy


async def test_active_check_reads_a_fresh_enhanced_probe_and_probes_once_it_is_stale(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running("AB", responders="AB") as cluster:
        probe = cluster.probe("A")
        check = active_pubsub_check(probe)
        probe.last.max_age = 40.0  # pubsub-enhanced: every 30 s, 10 s timeout
        first = await probe.run()  # the enhanced check's probe
        assert len(cluster.pubsub_net.published) == 1
        await trio.sleep(39.0)
        result = await check.checker()
        assert result.healthy and result.details == first.result().details
        assert len(cluster.pubsub_net.published) == 1  # read, not probed again
        await trio.sleep(2.0)  # the enhanced check is late: the active one probes itself
        assert (await check.checker()).healthy
        assert len(cluster.pubsub_net.published) == 2
        probe.last.max_age = 0.0  # no fresh twin: every run probes
        await check.checker()
        assert len(cluster.pubsub_net.published) == 3


# -------------------------------------------------------------------- real hosts


@asynccontextmanager
async def real_cluster(
    tmp_path: Path, count: int, *, wanted: Callable[[str], bool] | None = None
) -> AsyncIterator[list[tuple[P2PNode, PubSubProbe, ProbeResponder]]]:
    """``count`` nodes, each bootstrapped to the first, each with a probe and responder
    (``wanted`` goes to probe_for_node)."""
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
            probe, responder = probe_for_node(node, wanted=wanted)
            await nursery.start(responder.run)
            kits.append((node, probe, responder))
        yield kits


async def _meshed(origin: P2PNode, peers: list[P2PNode]) -> None:
    """Until the origin's GossipSub mesh for the probe topic holds every peer, and
    identify has told it that each speaks the answer protocol (the probe names no other)."""
    want = {p.host.get_id() for p in peers}
    mesh = origin.guarded_pubsub.router.mesh  # type: ignore[attr-defined]
    # Polling: GossipSub's mesh changes on its heartbeat and the peerstore on identify;
    # neither has an event to wait on.
    with trio.fail_after(10):
        while not (  # noqa: ASYNC110
            want <= set(mesh.get(TOPIC, ()))
            and all(ACK_PROTOCOL in _identified(origin, p.peer_id) for p in peers)
        ):
            await trio.sleep(0.05)


def _identified(origin: P2PNode, peer: str) -> list[str]:
    """The protocols identify told ``origin`` that ``peer`` speaks; [] before it did."""
    with contextlib.suppress(Exception):
        return list(origin.host.get_peerstore().get_protocols(ID.from_base58(peer)))
    return []


@asynccontextmanager
async def bare_gossip_peer(connect_to: list[P2PNode]) -> AsyncIterator[str]:
    """A py-libp2p host that speaks only standard protocols (identify, ping, GossipSub),
    subscribed to our topics and reading them, connected to ``connect_to``: a CHORUS Go
    or JS peer as the mesh sees it. It never answers a probe. Yields its peer id."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        connection_config=ConnectionConfig(
            max_connections_per_peer=1, enable_health_monitoring=False
        ),
    )
    gossipsub = GossipSub(
        protocols=list(GOSSIPSUB_PROTOCOLS),
        degree=4,
        degree_low=3,
        degree_high=6,
        heartbeat_interval=1,
    )
    pubsub = Pubsub(host, gossipsub)  # before any connection (notes, "Building a node")
    async with (
        host.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        background_trio_service(pubsub),
        background_trio_service(gossipsub),
        trio.open_nursery() as nursery,
    ):
        await pubsub.wait_until_ready()
        for topic in (TOPIC, DIGEST_TOPIC):
            nursery.start_soon(_drain, await pubsub.subscribe(topic))
        for node in connect_to:
            await host.connect(info_from_p2p_addr(Multiaddr(node.listen_addrs[0])))
        try:
            yield host.get_id().to_base58()
        finally:
            nursery.cancel_scope.cancel()
            # Leaving host.run() does not close the listener (notes, "Building a node").
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


async def _drain(subscription: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            await subscription.get()


async def _sees_bare_peer(origin: P2PNode, bare: str) -> None:
    """Until the origin knows everything that used to get ``bare`` named: it is connected,
    subscribes to the probe topic, and identify has told the origin its protocols."""
    bare_id = ID.from_base58(bare)
    await _until(
        lambda: (
            bare_id in origin.guarded_pubsub.peer_topics.get(TOPIC, ())
            and any("meshsub" in p for p in _identified(origin, bare))
        )
    )


@pytest.mark.network
async def test_real_bare_gossip_peer_beside_mesh_nodes_is_never_named(tmp_path: Path) -> None:
    async with (
        real_cluster(tmp_path, 3) as kits,
        bare_gossip_peer([kits[0][0]]) as bare,
    ):
        (a, probe, _), (b, _, _), (c, _, _) = kits
        await _meshed(a, [b, c])
        await _sees_bare_peer(a, bare)
        # k = 3 and three topic peers: before issue 14, the bare peer was named every time.
        outcomes = []
        for _ in range(3):  # within each responder's per-origin burst of 3
            with trio.fail_after(15):
                outcomes.append(await probe.run())
        assert all(o.healthy for o in outcomes), [o.message for o in outcomes]
        assert all(set(o.named) == {b.peer_id, c.peer_id} for o in outcomes)
        assert all(set(o.answered) == set(o.named) for o in outcomes)
        result = outcomes[-1].result()
        assert result.healthy and not result.warning
        assert result.details["non_mesh_peers"] == 1
        assert result.message.startswith("2 of 2 named peers answered")


@pytest.mark.network
async def test_real_node_beside_only_a_bare_gossip_peer_says_so(tmp_path: Path) -> None:
    async with real_cluster(tmp_path, 1) as [(a, probe, _)], bare_gossip_peer([a]) as bare:
        await _sees_bare_peer(a, bare)
        manager = CheckManager(node_id=a.peer_id, version="test")
        enhanced = EnhancedHealthChecks(connected_peers=a.connected_peers, pubsub_probe=probe)
        enhanced.attach(manager)
        check = manager.get("pubsub-enhanced")
        with trio.fail_after(15):
            result = await manager.run_check(check)

    expected = f"no peer speaks {ACK_PROTOCOL}: 1 connected peer is not a mesh node"
    assert not result.healthy and result.warning, result.message
    assert result.message.startswith(expected)
    assert check.critical
    # Degraded, not unhealthy: readiness stays 200 and the node is never shut down for it.
    # (p2p-connectivity and task-manager have no result yet; only this check is judged.)
    for other in manager.checks:
        other.enabled = other is check
    assert manager.decide() == (Status.DEGRADED, "Critical checks warning: pubsub-enhanced")


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
async def test_real_nodes_answer_only_wanted_origins(tmp_path: Path) -> None:
    # As a node with an admission policy wires it: a and b are members, c is a stranger
    # that every node can reach but none answers.
    members: set[str] = set()
    async with real_cluster(tmp_path, 3, wanted=members.__contains__) as kits:
        (a, probe_a, _), (b, _, rb), (c, probe_c, rc) = kits
        members.update({a.peer_id, b.peer_id})
        await _meshed(a, [b, c])
        await _meshed(c, [a, b])
        with trio.fail_after(15):
            outcome = await probe_a.run()
        # b is named first; c fills the third place and answers: a is a member to it.
        assert outcome.named[0] == b.peer_id and set(outcome.named) == {b.peer_id, c.peer_id}
        assert set(outcome.answered) == {b.peer_id, c.peer_id}
        with trio.fail_after(15):
            stranger = await probe_c.run(wait=2.0)
        assert not stranger.healthy and stranger.answered == ()
        assert rb.drops["unwanted"] == 1 and rc.answered == 1


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
        assert isinstance(probe.link, LibP2PLink)
        link = probe.link
        # On the answer protocol, from a peer no pending probe named: each stream is reset
        # before a byte is read. On a protocol open to anyone, the oversize one is cut.
        held = "/chorus-test/junk/1.0.0"
        open_link = LibP2PLink(a.host)
        open_link.set_handler(held, _ignore)
        junk = (b"\x00\xff" * 100, b'{"v":1}', b"[" * 900, b"x" * 5000)
        for protocol in (ACK_PROTOCOL, held):
            for data in junk:
                # a resets the stream early, mid-write or even before py-libp2p has read
                # its protocol confirmation (then opening it fails).
                with contextlib.suppress(Exception):
                    stream = await b.host.new_stream(
                        ID.from_base58(a.peer_id), [TProtocol(protocol)]
                    )
                    await stream.write(data)
                    await stream.close()
        await _until(lambda: link.dropped["unexpected"] == len(junk))
        await _until(lambda: bool(open_link.dropped))
        assert link.dropped == {"unexpected": len(junk)}
        assert open_link.dropped == {"too_large": 1}
        assert probe.unexpected_answers == 0
        with trio.fail_after(15):
            outcome = await probe.run()
        assert outcome.healthy, outcome.message


async def _until(cond: Callable[[], bool], within: float = 10.0, step: float = 0.02) -> None:
    # Polling: the link's and the responder's counters are updated by handlers with no
    # event to wait on.
    with trio.fail_after(within):
        while not cond():  # noqa: ASYNC110
            await trio.sleep(step)


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
