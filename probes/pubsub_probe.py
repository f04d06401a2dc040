"""The active PubSub probe: peers named in a probe answer it over a direct stream.

Why peers must answer: a node's own publish is delivered to its own subscription at once
and never comes back from the network, so the reference's "loopback" passes on a node with
no peers (py-libp2p notes, "GossipSub"). Here the origin names up to ``k`` (default 3) of
its connected peers, picked at random, and only those answer. Answers travel on a direct
libp2p stream to the origin, the fastest of the answer paths the notes measured (116 ms
against 464-541 ms over GossipSub at 10 nodes), and they cost nobody else a delivery: each
probe costs one publish plus at most ``k`` streams whatever the cluster size.

Wire formats (UTF-8 JSON objects, no whitespace; version 1). A reader ignores fields it
does not know and drops a message whose known fields are missing or malformed.

Probe, published on ``CHORUS/health-test/v1`` (at most 2048 bytes)::

    {"v": 1,                           # schema version
     "nonce": "<32 lowercase hex>",    # fresh random id of this probe
     "origin": "<base58 peer id>",     # must equal the pubsub message's signed sender
     "sent_at": 1727692200.123,        # origin's Unix time; informational only (clock skew)
     "payload": "<base64>",            # random bytes, at most 512 (default 32)
     "payload_sha256": "<64 hex>",     # sha256 of the payload bytes
     "responders": ["<peer id>", ...]} # at most 16 peers asked to answer

Answer, on a stream the responder opens to the origin with protocol
``/chorus/health-probe-ack/1.0.0``; the responder writes one object then closes its side,
so the message ends at EOF (at most 1024 bytes)::

    {"v": 1,
     "nonce": "<32 hex>",              # the probe's nonce
     "payload_sha256": "<64 hex>"}     # sha256 of the payload AS THE RESPONDER DECODED IT

The origin takes the responder's identity from the stream (authenticated by Noise), never
from the message, and accepts one answer per named peer. An answer whose hash differs from
the payload's is "corrupted": messages are signed, so that means a faulty or lying peer.

Hostile peers (issue 12: every peer may be hostile, and a stranger mints identities for
free). The responder answers only probes whose ``origin`` is the signed sender (otherwise
anyone could aim every responder at a victim), only when it is named, only once per
(origin, nonce), only to connected origins, only to origins the node wants to talk to (an
optional predicate: with an admission policy, members of the cluster view), with at most
2 answers per origin pending at a time, within a per-origin and a shared rate limit.
Origins that have never taken an answer from us in full ("new" ones) are served from a
budget and a queue of their own, so that identities minted by the dozen, which stall the
answer stream or just ask a lot, cannot use up what proven origins need; a send that
stalls is given up after 2 s, not py-libp2p's 30 s negotiation timeout. The origin reads
answer streams only from the peers its pending probes named, resets every other one at
once, and bounds the rest per peer and in all, with a read timeout
(``adapters.libp2p_link.LibP2PLink``). Every stream handler catches everything a peer
can cause, because an exception escaping a py-libp2p stream handler ends the whole node
(notes, "Hostile input").

Peers that are not mesh nodes (issue 14: CHORUS's Go and JS libp2p peers) connect, may
subscribe to the probe topic, and never answer. The origin names only peers whose identify
lists :data:`ACK_PROTOCOL`, which every mesh node registers (:func:`probe_for_node` builds
the probe with the responder), so they are never named and never counted as silent. A node
whose peers are all of that kind reports so as a warning (:meth:`ProbeOutcome.result`).
Identify is the peer's word: a hostile peer may claim the protocol and stay silent, which
is the silent named peer of before (with ``wanted``, members are named first), and its
protocol list is read only up to :data:`MAX_PEER_PROTOCOLS` entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import random
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import trio

from mesh.model import CheckResult, HealthCheck
from probes.last_outcome import LastOutcome
from probes.ports import (
    STREAM_DROP_REASONS,
    DirectLink,
    LinkError,
    LinkHandler,
    PubSub,
    PubSubMessage,
    SenderFilter,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = [
    "ACK_PROTOCOL",
    "ACTIVE_PUBSUB_CHECK",
    "ANSWER_DROP_REASONS",
    "DEFAULT_SEND_TIMEOUT",
    "STREAM_DROP_REASONS",
    "TOPIC",
    "Ack",
    "DirectLink",
    "InMemoryLink",
    "InMemoryLinkNetwork",
    "LinkError",
    "ProbeMessage",
    "ProbeOutcome",
    "ProbeResponder",
    "PubSubProbe",
    "RateLimiter",
    "SenderFilter",
    "TokenBucket",
    "WireError",
    "active_pubsub_check",
    "decode_ack",
    "decode_probe",
]

logger = logging.getLogger(__name__)

TOPIC = "CHORUS/health-test/v1"
ACK_PROTOCOL = "/chorus/health-probe-ack/1.0.0"
ACTIVE_PUBSUB_CHECK = "pubsub-active-probe"
WIRE_VERSION = 1

MAX_PROBE_BYTES = 2048
MAX_ACK_BYTES = 1024
MAX_PAYLOAD_BYTES = 512
MAX_RESPONDERS = 16
SEEN_NONCES = 1024  # (origin, nonce) pairs remembered against replays; far above honest rates

DEFAULT_RESPONDERS = 3  # k: answers per probe; the cost of one probe does not grow with N
DEFAULT_PAYLOAD_BYTES = 32
DEFAULT_WAIT = 10.0  # seconds; the reference's "wait for message receipt (max 10 seconds)"
# Once one correct answer is in, the other named peers get this much longer: a dead peer
# that is not yet noticed as disconnected should not hold every probe for the full wait.
DEFAULT_GRACE = 1.0

# Why a responder left a probe unanswered (ProbeResponder.drops).
ANSWER_DROP_REASONS = (
    "malformed",
    "forged_origin",
    "own",
    "not_named",
    "unwanted",
    "duplicate",
    "not_connected",
    "pending",
    "rate_limited",
    "new_origins",
    "queue_full",
    "stopped",
    "send_failed",
    "error",
)

# Outbound answers (ProbeResponder). An honest answer is a stream negotiation, one write
# and a close: 116 ms at 10 nodes (notes), so 2 s is ample; an origin that never finishes
# the negotiation would otherwise hold a worker for py-libp2p's 30 s negotiation timeout.
DEFAULT_SEND_TIMEOUT = 2.0
# Answers queued or being sent to one origin at once. An honest origin runs at most 2
# probes at once (the active and the enhanced check start together every minute), so 2
# answers it both; more would only let one identity hold more of our workers.
MAX_PENDING_PER_ORIGIN = 2
# Origins that took an answer in full, remembered (LRU) so that they skip the new-origin
# budget; honest origins refresh their place with every probe that names us (about once a
# probe interval per origin), far more often than 1,024 new origins can be admitted.
MAX_PROVEN_ORIGINS = 1024

# The reference's Active PubSub Check properties.
ACTIVE_INTERVAL = 60.0
ACTIVE_TIMEOUT = 15.0

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- wire


class WireError(ValueError):
    """A probe or answer is not valid version-1 JSON of the documented shape."""


@dataclass(frozen=True, slots=True)
class ProbeMessage:
    nonce: str
    origin: str
    sent_at: float
    payload: bytes
    payload_sha256: str
    responders: tuple[str, ...]

    def encode(self) -> bytes:
        return _dump(
            {
                "v": WIRE_VERSION,
                "nonce": self.nonce,
                "origin": self.origin,
                "sent_at": self.sent_at,
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payload_sha256": self.payload_sha256,
                "responders": list(self.responders),
            }
        )


@dataclass(frozen=True, slots=True)
class Ack:
    nonce: str
    payload_sha256: str

    def encode(self) -> bytes:
        return _dump(
            {"v": WIRE_VERSION, "nonce": self.nonce, "payload_sha256": self.payload_sha256}
        )


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _load(data: bytes, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise WireError(f"message is {len(data)} bytes, over the limit of {limit}")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported version {obj.get('v')!r}")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    # bool is an int: refuse it where a number is expected.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError(f"field {name!r} is missing or not {kind}")
    return value


def _hex_field(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _field(obj, name, str)
    if not pattern.match(value):
        raise WireError(f"field {name!r} is not lowercase hex of the right length")
    return str(value)


def decode_probe(data: bytes) -> ProbeMessage:
    obj = _load(data, MAX_PROBE_BYTES)
    try:
        payload = base64.b64decode(_field(obj, "payload", str), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError("field 'payload' is not base64") from exc
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    responders = _field(obj, "responders", list)
    if len(responders) > MAX_RESPONDERS or not all(isinstance(r, str) for r in responders):
        raise WireError(f"field 'responders' is not a list of at most {MAX_RESPONDERS} ids")
    return ProbeMessage(
        nonce=_hex_field(obj, "nonce", _HEX32),
        origin=_field(obj, "origin", str),
        sent_at=float(_field(obj, "sent_at", (int, float))),
        payload=payload,
        payload_sha256=_hex_field(obj, "payload_sha256", _HEX64),
        responders=tuple(responders),
    )


def decode_ack(data: bytes) -> Ack:
    obj = _load(data, MAX_ACK_BYTES)
    return Ack(
        nonce=_hex_field(obj, "nonce", _HEX32),
        payload_sha256=_hex_field(obj, "payload_sha256", _HEX64),
    )


# ----------------------------------------------------------------- rate limiting


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full. Times are passed in."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate!r}, {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        # max(): a clock that steps back must not mint negative time.
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """A global bucket plus one per key (origin); the per-key buckets are bounded LRU.

    The per-origin bucket keeps one chatty or hostile origin from using up the global
    budget that honest origins need. A call may name another shared bucket (``pool``) in
    place of the global one: the responder serves new origins from a budget of their own.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        per_key_rate: float,
        per_key_burst: float,
        max_keys: int = 1024,
        now: float = 0.0,
    ) -> None:
        self._global = TokenBucket(rate, burst, now)
        self._per_key_rate = per_key_rate
        self._per_key_burst = per_key_burst
        self._max_keys = max_keys
        self._keys: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float, *, pool: TokenBucket | None = None) -> bool:
        return self.refusal(key, now, pool=pool) is None

    def refusal(
        self, key: str, now: float, *, pool: TokenBucket | None = None
    ) -> Literal["per_key", "shared"] | None:
        """None when ``key`` may go now; else which budget refused it: its own
        (``per_key``) or the shared one (``pool``, the global bucket by default)."""
        bucket = self._keys.get(key)
        if bucket is None:
            bucket = TokenBucket(self._per_key_rate, self._per_key_burst, now)
            self._keys[key] = bucket
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        self._keys.move_to_end(key)
        # Per key first: a refused origin must not spend a shared token.
        if not bucket.take(now):
            return "per_key"
        shared = self._global if pool is None else pool
        return None if shared.take(now) else "shared"


# ------------------------------------------------------------------ direct link


class InMemoryLinkNetwork:
    """Fake direct links: every pair of reachable attached nodes is connected; delivery is
    inline (``send`` returns after the receiver's handler ran), like the pubsub fake."""

    def __init__(self) -> None:
        self._nodes: dict[str, InMemoryLink] = {}

    def attach(self, peer_id: str, *, protocols: Iterable[str] = (ACK_PROTOCOL,)) -> InMemoryLink:
        """A node that says it speaks ``protocols`` (what identify would tell), plus the
        ones it sets handlers for. By default a mesh node; ``protocols=()`` is a peer that
        does not run this mesh."""
        if peer_id in self._nodes:
            raise ValueError(f"peer {peer_id} is already attached")
        link = self._nodes[peer_id] = InMemoryLink(self, peer_id, protocols)
        return link

    def set_reachable(self, peer_id: str, reachable: bool) -> None:
        self._nodes[peer_id].reachable = reachable

    def _peers_of(self, peer_id: str) -> list[str]:
        if not self._nodes[peer_id].reachable:
            return []
        return [p for p, n in self._nodes.items() if p != peer_id and n.reachable]


class InMemoryLink:
    def __init__(
        self, network: InMemoryLinkNetwork, peer_id: str, protocols: Iterable[str] = ()
    ) -> None:
        self._net = network
        self.peer_id = peer_id
        self.reachable = True
        self.protocols = set(protocols)  # what this node says it speaks
        self._handlers: dict[str, tuple[LinkHandler, SenderFilter | None]] = {}
        self.sent: list[tuple[str, str, bytes]] = []  # (to, protocol, data), for asserts
        # Only "unexpected" (as LibP2PLink counts it): inline delivery never stalls.
        self.dropped: Counter[str] = Counter()

    def connected_peers(self) -> list[str]:
        return self._net._peers_of(self.peer_id)

    def speaks(self, peer_id: str, protocol: str) -> bool:
        node = self._net._nodes.get(peer_id)
        return node is not None and protocol in node.protocols

    async def announce(self) -> None:
        await trio.lowlevel.checkpoint()  # the fake's "identify" is always current

    async def send(self, peer_id: str, protocol: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if peer_id not in self._net._peers_of(self.peer_id):
            raise LinkError(f"{peer_id} is not connected")
        receiver = self._net._nodes[peer_id]
        registered = receiver._handlers.get(protocol)
        if registered is None:
            raise LinkError(f"{peer_id} does not speak {protocol}")
        handler, expected = registered
        if expected is not None and not expected(self.peer_id):
            receiver.dropped["unexpected"] += 1
            raise LinkError(f"{peer_id} reset the stream: not waiting for {self.peer_id}")
        self.sent.append((peer_id, protocol, data))
        await handler(self.peer_id, data)

    def set_handler(
        self, protocol: str, handler: LinkHandler, *, expected: SenderFilter | None = None
    ) -> None:
        self._handlers[protocol] = (handler, expected)
        self.protocols.add(protocol)  # as a real host lists its handlers in identify


# -------------------------------------------------------------------- responder


@dataclass(frozen=True, slots=True)
class _Answer:
    origin: str
    data: bytes


class ProbeResponder:
    """Answers probes that name this node. Start with ``await nursery.start(r.run)``.

    Whom it answers, in order (each a cheap guard before any network work): probes whose
    origin signed them, that name us, and that are not replays; then only origins that
    ``wanted`` accepts, if given (the node passes "a member of the cluster view" when an
    admission policy is on, so strangers cost one predicate call and nothing else), that
    are connected, and that have fewer than :data:`MAX_PENDING_PER_ORIGIN` answers of ours
    pending. Then the budgets: each
    origin's own, and a shared one. Origins that took an answer in full before
    (:meth:`proven`), or any origin ``wanted`` accepts, share the main budget and queue;
    the others ("new") share a budget of ``new_origins_per_second`` and a queue of their
    own, so that identities minted for free cannot spend what proven origins need, nor
    hold the workers that serve them. An origin whose answer fails or stalls past
    ``send_timeout`` is new again.

    ``drops`` counts probes not answered, by reason: ``malformed``, ``forged_origin``,
    ``own``, ``not_named``, ``unwanted``, ``duplicate``, ``not_connected``, ``pending``,
    ``rate_limited``, ``new_origins``, ``queue_full``, ``stopped``, ``send_failed``,
    ``error``.
    """

    def __init__(
        self,
        pubsub: PubSub,
        link: DirectLink,
        *,
        wanted: Callable[[str], bool] | None = None,
        # Honest load: each node is named about k times per probe interval of the
        # cluster, a fraction of an answer per second; these leave 10x headroom.
        max_answers_per_second: float = 5.0,
        burst: float = 10.0,
        per_origin_per_second: float = 1.0,
        per_origin_burst: float = 3.0,
        # Origins never answered in full before. A cluster that starts meets each peer
        # once (the burst); after that, new origins are rare. A stranger minting
        # identities gets no more than this, whatever it mints.
        new_origins_per_second: float = 1.0,
        new_origin_burst: float = 8.0,
        queue_size: int = 16,  # per queue: proven origins' and new ones'
        # Workers are idle tasks in honest times; what they must absorb is stalls of
        # send_timeout (2 s) each. Proven origins: without ``wanted``, a stranger can
        # prove an identity (one new-origin token, 1 a second) and then stall its 2
        # pending answers before it is new again: 4 workers busy at most, 8 leave 4
        # free. New origins: 1 token a second, 2 s each: 2 busy at most, 4 leave 2 free.
        workers: int = 8,
        new_origin_workers: int = 4,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._pubsub = pubsub
        self._link = link
        self._wanted = wanted
        self._limits = RateLimiter(
            rate=max_answers_per_second,
            burst=burst,
            per_key_rate=per_origin_per_second,
            per_key_burst=per_origin_burst,
        )
        self._new_origins = TokenBucket(new_origins_per_second, new_origin_burst, 0.0)
        self._queue_size = queue_size
        self._workers = workers
        self._new_origin_workers = new_origin_workers
        self._send_timeout = send_timeout
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Origins that took an answer in full, least recent first (bounded LRU).
        self._proven: OrderedDict[str, None] = OrderedDict()
        # Answers queued or being sent, by origin (no zeros): at most
        # MAX_PENDING_PER_ORIGIN each, so the queues and workers hold few per identity.
        self._busy: Counter[str] = Counter()
        self._queue: trio.MemorySendChannel[_Answer] | None = None
        self._new_queue: trio.MemorySendChannel[_Answer] | None = None
        self.answered = 0
        self.drops: Counter[str] = Counter()

    def proven(self, origin: str) -> bool:
        """Whether ``origin`` took an answer of ours in full (and none failed since)."""
        return origin in self._proven

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[_Answer](self._queue_size)
        new_send, new_receive = trio.open_memory_channel[_Answer](self._queue_size)
        self._queue, self._new_queue = send, new_send
        # The validator also stops py-libp2p from forwarding garbage and forged probes.
        self._pubsub.set_validator(TOPIC, self._is_acceptable)
        await self._pubsub.subscribe(TOPIC, self._on_message)
        task_status.started()
        try:
            async with send, new_send, trio.open_nursery() as nursery:
                # Answering makes this a mesh node; origins name only peers whose identify
                # says so, and peers that identified us before the probe's handler was set
                # would not know (the node builds both after its host is up).
                nursery.start_soon(self._link.announce)
                for _ in range(self._workers):
                    nursery.start_soon(self._send_answers, receive.clone())
                for _ in range(self._new_origin_workers):
                    nursery.start_soon(self._send_answers, new_receive.clone())
                await receive.aclose()
                await new_receive.aclose()
        finally:
            self._queue = self._new_queue = None
            self._busy.clear()

    @staticmethod
    def _is_acceptable(msg: PubSubMessage) -> bool:
        try:
            return decode_probe(msg.data).origin == msg.from_peer
        except WireError:
            return False

    async def _on_message(self, msg: PubSubMessage) -> None:
        try:
            self._consider(msg)
        except Exception:  # nothing a peer sends may break the subscription
            self.drops["error"] += 1
            logger.exception("probe responder failed on a message from %s", msg.from_peer)
        await trio.lowlevel.checkpoint()

    def _consider(self, msg: PubSubMessage) -> None:
        try:
            probe = decode_probe(msg.data)
        except WireError:
            self.drops["malformed"] += 1
            return
        # Rules, in order; each is a cheap guard before any network work.
        reason = self._refusal(probe, msg.from_peer)
        if reason is not None:
            self.drops[reason] += 1
            return
        queue = self._queue if self._trusted(probe.origin) else self._new_queue
        if queue is None:
            self.drops["stopped"] += 1  # the subscription outlives run(): no unsubscribe
            return
        answer = Ack(probe.nonce, hashlib.sha256(probe.payload).hexdigest())
        try:
            queue.send_nowait(_Answer(probe.origin, answer.encode()))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.drops["queue_full"] += 1
            return
        self._busy[probe.origin] += 1

    def _trusted(self, origin: str) -> bool:
        # With a predicate, its yes is the trust (an admitted member); without one, an
        # origin earns it by taking an answer in full.
        return self._wanted is not None or origin in self._proven

    def _refusal(self, probe: ProbeMessage, signed_sender: str) -> str | None:
        me = self._link.peer_id
        origin = probe.origin
        if origin != signed_sender:
            return "forged_origin"  # else anyone could aim our answers at a victim
        if origin == me:
            return "own"  # our own publish, delivered locally
        if me not in probe.responders:
            return "not_named"
        # Before the replay table: strangers' probes must not push members' nonces out.
        if self._wanted is not None and not self._wanted(origin):
            return "unwanted"
        key = (origin, probe.nonce)
        if key in self._seen:
            return "duplicate"  # a re-signed replay carries the same nonce
        self._seen[key] = None
        if len(self._seen) > SEEN_NONCES:
            self._seen.popitem(last=False)
        # The origin names only its connected peers, so it is one of ours: never dial.
        if origin not in self._link.connected_peers():
            return "not_connected"
        if self._busy[origin] >= MAX_PENDING_PER_ORIGIN:
            return "pending"  # what an identity can hold is bounded, not what it asks
        if self._trusted(origin):
            budget = self._limits.refusal(origin, self._clock())
            return None if budget is None else "rate_limited"
        budget = self._limits.refusal(origin, self._clock(), pool=self._new_origins)
        if budget is None:
            return None
        return "rate_limited" if budget == "per_key" else "new_origins"

    async def _send_answers(self, receive: trio.MemoryReceiveChannel[_Answer]) -> None:
        async with receive:
            async for answer in receive:
                try:
                    delivered = await self._send(answer)
                finally:
                    self._busy[answer.origin] -= 1
                    if self._busy[answer.origin] <= 0:
                        del self._busy[answer.origin]
                if delivered:
                    self.answered += 1
                    self._proven[answer.origin] = None
                    self._proven.move_to_end(answer.origin)
                    if len(self._proven) > MAX_PROVEN_ORIGINS:
                        self._proven.popitem(last=False)
                else:
                    self.drops["send_failed"] += 1
                    self._proven.pop(answer.origin, None)

    async def _send(self, answer: _Answer) -> bool:
        """Whether ``answer`` was delivered within the send timeout; never raises but
        Cancelled."""
        try:
            with trio.fail_after(self._send_timeout):
                await self._link.send(answer.origin, ACK_PROTOCOL, answer.data)
        except (LinkError, trio.TooSlowError) as exc:
            logger.info("probe answer to %s failed: %s", answer.origin, exc)
            return False
        except Exception:
            logger.exception("probe answer to %s failed", answer.origin)
            return False
        return True


# ------------------------------------------------------------------------ probe


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One probe's result. ``latency`` is seconds from publish to the first correct answer."""

    named: tuple[str, ...]
    answered: tuple[str, ...]  # named peers that answered with the right hash, in order
    corrupted: tuple[str, ...]  # named peers that answered with a wrong hash
    latency: float | None
    wait: float
    connected: int  # connected peers when the probe started
    # Of those, peers whose identify does not list ACK_PROTOCOL: not mesh nodes (or not
    # identified yet), so never named.
    non_mesh: int = 0

    @property
    def healthy(self) -> bool:
        return bool(self.answered)

    @property
    def no_mesh_peers(self) -> bool:
        """Connected, but only to peers that are not mesh nodes: nobody to ask."""
        return self.connected > 0 and self.non_mesh >= self.connected

    @property
    def message(self) -> str:
        if not self.named and not self.connected:
            return "no connected peers to answer the probe"
        if self.no_mesh_peers:
            return f"no peer speaks {ACK_PROTOCOL}: {_not_mesh_nodes(self.non_mesh)}"
        if not self.named:
            mesh = self.connected - self.non_mesh
            text = f"none of {mesh} connected peers subscribes to {TOPIC}"
            return f"{text}; {_not_mesh_nodes(self.non_mesh)}" if self.non_mesh else text
        bad = ""
        if self.corrupted:
            bad = (
                f"{len(self.corrupted)} named peer(s) answered with a corrupted payload hash:"
                f" {', '.join(self.corrupted)}"
            )
        if self.answered:
            assert self.latency is not None
            text = (
                f"{len(self.answered)} of {len(self.named)} named peers answered;"
                f" first in {self.latency * 1000:.0f} ms"
            )
            return f"{text}; {bad}" if bad else text
        if bad:
            return f"{bad}; no correct answer within {self.wait:g}s"
        return f"no answer from {len(self.named)} named peers within {self.wait:g}s"

    def details(self) -> dict[str, Any]:
        return {
            "latency_ms": None if self.latency is None else self.latency * 1000,
            "responders_named": len(self.named),
            "connected_peers": self.connected,
            "non_mesh_peers": self.non_mesh,
            "responders_answered": list(self.answered),
            "corrupted": len(self.corrupted),
        }

    def result(self) -> CheckResult:
        if self.no_mesh_peers:
            # A warning: failed, degraded, never unhealthy (mesh.status). Not a pass: the
            # probe exists to prove the network carries our messages and nobody could be
            # asked, and a probe that passes on an isolated node is the defect the notes
            # warn of ("GossipSub"). Not a plain failure either: the connections work,
            # the peers just run other software; readiness turning 503, or a critical
            # check ending the node, would fix nothing. A node with no peers at all still
            # fails plainly.
            return CheckResult.warn(self.message, **self.details())
        return CheckResult(healthy=self.healthy, message=self.message, details=self.details())


def _not_mesh_nodes(count: int) -> str:
    if count == 1:
        return "1 connected peer is not a mesh node"
    return f"{count} connected peers are not mesh nodes"


@dataclass
class _Pending:
    named: frozenset[str]
    expected_sha256: str
    started: float
    answered: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    first_ok: float | None = None
    all_in: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None


class PubSubProbe:
    """Publishes probes and collects the named peers' answers.

    Registers its answer handler on ``link`` when built; only the peers a pending probe
    named, and that have not answered it yet, may open an answer stream
    (:meth:`expects`). Several probes may run at once (the active and the enhanced check
    share one instance); nonces keep them apart.

    With ``wanted`` (the node's: "a member of the cluster view", when an admission policy
    is on), wanted peers are named first and others only where too few wanted peers
    subscribe: strangers that subscribe to the probe topic by the dozen would otherwise be
    named most of the time, and never answer.
    """

    def __init__(
        self,
        pubsub: PubSub,
        link: DirectLink,
        *,
        responders: int = DEFAULT_RESPONDERS,
        payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
        wait: float = DEFAULT_WAIT,
        grace: float = DEFAULT_GRACE,
        topic_peers: Callable[[], Iterable[str]] | None = None,
        wanted: Callable[[str], bool] | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= responders <= MAX_RESPONDERS:
            raise ValueError(f"responders must be in 1..{MAX_RESPONDERS}, got {responders}")
        if not 1 <= payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload_bytes must be in 1..{MAX_PAYLOAD_BYTES}")
        self._pubsub = pubsub
        self.link = link
        self.responders = responders
        self._payload_bytes = payload_bytes
        self.wait = wait
        self._grace = grace
        # Peers known to subscribe to TOPIC (GossipSub's peer_topics). A non-mesh peer
        # may subscribe too (a CHORUS Go peer watching our topics): run() also requires
        # the answer protocol.
        self._topic_peers = topic_peers
        self._wanted = wanted
        self._rng = rng or random.Random()
        self._wall = wall_clock
        self._pending: dict[str, _Pending] = {}
        # Answers from named peers that are malformed, name an unknown nonce or repeat
        # one; answers from anyone else never get this far (LibP2PLink counts them).
        self.unexpected_answers = 0
        self.last = LastOutcome[ProbeOutcome]()  # what the active check may read
        link.set_handler(ACK_PROTOCOL, self._on_answer, expected=self.expects)

    def expects(self, peer: str) -> bool:
        """Whether a pending probe named ``peer`` and still waits for its answer."""
        return any(
            peer in p.named and peer not in p.answered and peer not in p.corrupted
            for p in self._pending.values()
        )

    def _is_mesh_node(self, peer: str) -> bool:
        if self.link.speaks(peer, ACK_PROTOCOL):
            return True
        try:
            return self._wanted is not None and bool(self._wanted(peer))
        except Exception:  # the view's predicate must not end a probe
            return False

    def _pick(self, peers: list[str]) -> tuple[str, ...]:
        """Up to ``responders`` of ``peers`` (sorted) at random, wanted peers first."""
        if self._wanted is None:
            return tuple(self._rng.sample(peers, min(self.responders, len(peers))))
        wanted = [p for p in peers if self._wanted(p)]
        named = self._rng.sample(wanted, min(self.responders, len(wanted)))
        others = sorted(set(peers).difference(wanted))
        named += self._rng.sample(others, min(self.responders - len(named), len(others)))
        return tuple(named)

    async def run(self, *, wait: float | None = None) -> ProbeOutcome:
        """One probe; ``wait`` overrides the instance's wait for answers (seconds). Its
        outcome is also kept in ``last``."""
        return self.last.put(await self._probe(self.wait if wait is None else wait))

    async def _probe(self, wait: float) -> ProbeOutcome:
        connected = set(self.link.connected_peers()) - {self.link.peer_id}
        # Only mesh nodes answer: a peer that does not speak the answer protocol would be
        # named, never answer, and count as a silent peer against the network (issue 14).
        # A member of our signed view is one whatever identify says: a peerstore evicts
        # its oldest entries (1,000 peers in py-libp2p) when minted identities flood it,
        # and identify runs once per connection.
        mesh = {p for p in connected if self._is_mesh_node(p)}
        non_mesh = len(connected) - len(mesh)
        peers = sorted(mesh)
        if self._topic_peers is not None:
            peers = sorted(mesh.intersection(self._topic_peers()))
        if not peers:
            return ProbeOutcome((), (), (), None, wait, len(connected), non_mesh)
        named = self._pick(peers)
        payload = secrets.token_bytes(self._payload_bytes)
        digest = hashlib.sha256(payload).hexdigest()
        probe = ProbeMessage(
            nonce=secrets.token_hex(16),
            origin=self.link.peer_id,
            sent_at=self._wall(),
            payload=payload,
            payload_sha256=digest,
            responders=named,
        )
        pending = _Pending(frozenset(named), digest, trio.current_time())
        self._pending[probe.nonce] = pending
        try:
            with trio.move_on_after(wait) as scope:
                pending.scope = scope  # the first correct answer shortens it to the grace
                await self._pubsub.publish(TOPIC, probe.encode())
                await pending.all_in.wait()
        finally:
            del self._pending[probe.nonce]
        latency = None if pending.first_ok is None else pending.first_ok - pending.started
        return ProbeOutcome(
            named,
            tuple(pending.answered),
            tuple(pending.corrupted),
            latency,
            wait,
            len(connected),
            non_mesh,
        )

    async def _on_answer(self, sender: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        try:
            ack = decode_ack(data)
        except WireError:
            self.unexpected_answers += 1
            return
        pending = self._pending.get(ack.nonce)
        if (
            pending is None
            or sender not in pending.named
            or sender in pending.answered
            or sender in pending.corrupted
        ):
            self.unexpected_answers += 1
            return
        if ack.payload_sha256 == pending.expected_sha256:
            pending.answered.append(sender)
            if pending.first_ok is None:
                pending.first_ok = trio.current_time()
                if pending.scope is not None:
                    pending.scope.deadline = min(
                        pending.scope.deadline, pending.first_ok + self._grace
                    )
        else:
            pending.corrupted.append(sender)
        if len(pending.answered) + len(pending.corrupted) == len(pending.named):
            pending.all_in.set()


def active_pubsub_check(probe: PubSubProbe, *, name: str = ACTIVE_PUBSUB_CHECK) -> HealthCheck:
    """The reference's Active PubSub Check: non-critical, every 60 s, 15 s timeout.

    Healthy when at least one named peer answered with the right hash; a warning (failed,
    degraded) when every connected peer is a non-mesh node (:meth:`ProbeOutcome.result`).
    """

    async def check_pubsub() -> CheckResult:
        # The enhanced check's probe when fresh enough (probe.last.max_age): the same path,
        # proven seconds ago, need not be probed again.
        outcome = probe.last.fresh()
        return (outcome if outcome is not None else await probe.run()).result()

    return HealthCheck(
        name=name,
        checker=check_pubsub,
        description=f"Named peers answer a probe on {TOPIC}",
        interval=ACTIVE_INTERVAL,
        timeout=ACTIVE_TIMEOUT,
        critical=False,
        component="pubsub",
    )
