"""The pubsub edge: a py-libp2p GossipSub implementation of ``probes.ports.PubSub`` and a fake.

Delivery facts the callers must know (py-libp2p notes, "GossipSub"):
- A node's own publish reaches its own handlers locally, and never again from the
  network. A node with no peers still hears itself: a probe must make peers answer.
- Validators also run on our own publishes; a rejected publish is dropped silently.
- A subscription's 32-slot channel drops silently when it is not read; the reader here
  drains it into a larger buffer of our own and counts what it has to drop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID

# The interface is the probes layer's (probes/ports.py); this module implements it.
from probes.ports import MessageHandler, MessageValidator, PubSub, PubSubMessage

if TYPE_CHECKING:
    from libp2p.abc import ISubscriptionAPI
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub

__all__ = [
    "InMemoryPubSub",
    "InMemoryPubSubNetwork",
    "LibP2PPubSub",
    "MessageHandler",
    "MessageValidator",
    "PubSub",
    "PubSubMessage",
]

logger = logging.getLogger(__name__)


async def _call_handlers(handlers: list[MessageHandler], msg: PubSubMessage) -> int:
    """Run every handler; returns how many raised. A handler never kills delivery."""
    errors = 0
    for handler in list(handlers):
        try:
            await handler(msg)
        except Exception:
            errors += 1
            logger.exception("pubsub handler %r failed on topic %s", handler, msg.topic)
    return errors


def _run_validator(fn: MessageValidator, msg: PubSubMessage) -> bool:
    try:
        return bool(fn(msg))
    except Exception:
        logger.exception("pubsub validator for topic %s raised; dropping", msg.topic)
        return False


def _to_message(topic: str, raw: rpc_pb2.Message) -> PubSubMessage:
    return PubSubMessage(
        topic=topic,
        data=raw.data,
        from_peer=ID(raw.from_id).to_base58(),
        seqno=raw.seqno,
        envelope=raw.SerializeToString(),
    )


class LibP2PPubSub:
    """:class:`PubSub` over a running py-libp2p ``Pubsub``; tasks run in ``nursery``."""

    def __init__(self, pubsub: Pubsub, nursery: trio.Nursery, *, buffer_size: int = 1024) -> None:
        self._pubsub = pubsub
        self._nursery = nursery
        self._buffer_size = buffer_size
        self._handlers: dict[str, list[MessageHandler]] = {}
        # Counters for whoever wires metrics: messages our buffer had to drop because the
        # handlers were too slow, and handler exceptions.
        self.dropped: int = 0
        self.handler_errors: int = 0

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        handlers = self._handlers.get(topic)
        if handlers is not None:
            handlers.append(handler)
            return
        handlers = self._handlers[topic] = [handler]
        try:
            subscription = await self._pubsub.subscribe(topic)
        except BaseException:
            del self._handlers[topic]
            raise
        send, receive = trio.open_memory_channel[PubSubMessage](self._buffer_size)
        self._nursery.start_soon(self._drain, topic, subscription, send)
        self._nursery.start_soon(self._dispatch, handlers, receive)

    async def publish(self, topic: str, data: bytes) -> None:
        await self._pubsub.publish(topic, data)

    def set_validator(self, topic: str, fn: MessageValidator) -> None:
        def validate(_forwarder: ID, raw: rpc_pb2.Message) -> bool:
            return _run_validator(fn, _to_message(topic, raw))

        self._pubsub.set_topic_validator(topic, validate, False)

    async def _drain(
        self,
        topic: str,
        subscription: ISubscriptionAPI,
        send: trio.MemorySendChannel[PubSubMessage],
    ) -> None:
        # Never awaits anything but the libp2p channel, so its 32 slots stay free
        # however slow the handlers are (notes: an unread subscription drops silently).
        async with send:
            async for raw in subscription:  # ends when the subscription is closed
                try:
                    send.send_nowait(_to_message(topic, raw))
                except trio.WouldBlock:
                    self.dropped += 1
                    logger.warning("pubsub handlers on %s fell behind; message dropped", topic)

    async def _dispatch(
        self, handlers: list[MessageHandler], receive: trio.MemoryReceiveChannel[PubSubMessage]
    ) -> None:
        async with receive:
            async for msg in receive:
                self.handler_errors += await _call_handlers(handlers, msg)


class InMemoryPubSubNetwork:
    """A shared fake broadcast medium: every published message reaches every subscriber
    of its topic on every attached, reachable node, including the publisher itself.

    Delivery is inline and in attach order (the publisher's ``publish`` returns after all
    handlers ran), which keeps unit tests deterministic. Validators behave as in
    py-libp2p: the publisher's own validator runs first and a rejection drops the message
    for everyone; then each receiver's validator filters its copy.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, InMemoryPubSub] = {}
        self.published: list[PubSubMessage] = []  # everything ever published, for asserts

    def attach(self, peer_id: str) -> InMemoryPubSub:
        if peer_id in self._nodes:
            raise ValueError(f"peer {peer_id} is already attached")
        node = InMemoryPubSub(self, peer_id)
        self._nodes[peer_id] = node
        return node

    def set_reachable(self, peer_id: str, reachable: bool) -> None:
        """An unreachable node still hears its own publishes, like an isolated libp2p node."""
        self._nodes[peer_id].reachable = reachable

    async def _broadcast(self, origin: InMemoryPubSub, msg: PubSubMessage) -> None:
        self.published.append(msg)
        own = origin._validators.get(msg.topic)
        if own is not None and not _run_validator(own, msg):
            return
        for node in list(self._nodes.values()):
            if node is not origin and not (origin.reachable and node.reachable):
                continue
            await node._deliver(msg)


class InMemoryPubSub:
    """One node on an :class:`InMemoryPubSubNetwork`; same contract as LibP2PPubSub."""

    def __init__(self, network: InMemoryPubSubNetwork, peer_id: str) -> None:
        self._net = network
        self.peer_id = peer_id
        self.reachable = True
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._validators: dict[str, MessageValidator] = {}
        self._seqno = 0
        self.handler_errors: int = 0

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        await trio.lowlevel.checkpoint()
        self._handlers.setdefault(topic, []).append(handler)

    async def publish(self, topic: str, data: bytes) -> None:
        self._seqno += 1
        msg = PubSubMessage(topic, data, self.peer_id, self._seqno.to_bytes(8, "big"))
        await self._net._broadcast(self, msg)

    def set_validator(self, topic: str, fn: MessageValidator) -> None:
        self._validators[topic] = fn

    async def _deliver(self, msg: PubSubMessage) -> None:
        handlers = self._handlers.get(msg.topic)
        if not handlers:
            return
        validator = self._validators.get(msg.topic)
        if validator is not None and msg.from_peer != self.peer_id:
            if not _run_validator(validator, msg):
                return
        self.handler_errors += await _call_handlers(handlers, msg)
