"""The PubSub probe's responder: answers the probes that name this node, within bounds.

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
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from probes.ports import DirectLink, LinkError, PubSub, PubSubMessage
from probes.probe_wire import ACK_PROTOCOL, TOPIC, Ack, ProbeMessage, WireError, decode_probe
from probes.rate_limit import RateLimiter, TokenBucket

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = [
    "ANSWER_DROP_REASONS",
    "DEFAULT_SEND_TIMEOUT",
    "MAX_PENDING_PER_ORIGIN",
    "MAX_PROVEN_ORIGINS",
    "ProbeResponder",
]

logger = logging.getLogger(__name__)

SEEN_NONCES = 1024  # (origin, nonce) pairs remembered against replays; far above honest rates

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
            return decode_probe(msg.data, msg.from_peer).origin == msg.from_peer
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
            probe = decode_probe(msg.data, msg.from_peer)
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
        if not probe.names(me):
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
