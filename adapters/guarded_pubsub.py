"""A Pubsub that survives hostile frames instead of dying with them (:class:`GuardedPubsub`).

Also the one shutdown race py-libp2p's pubsub reader raises (notes, "Building a node"),
which the node's exit (``adapters.host_teardown``) must tell from real errors.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable

import trio
from libp2p.abc import IHost, INetStream, ISubscriptionAPI
from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as libp2p_pubsub
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from adapters.lean_records import key_in_id, without_sender_record

__all__ = ["SUBSCRIPTION_SLOTS", "GuardedPubsub", "is_shutdown_race", "without_shutdown_race"]

# Messages a topic's subscription holds until our reader (adapters.pubsub) takes them.
# py-libp2p's 32 dropped notices at a newcomer: one RPC of IWANT answers is pushed without
# a checkpoint between its messages (20-node bench, 2026-12-05). At most an inbound RPC's
# size each (64 KiB; ours are validated to 4.5 KB), so 16 MiB at worst.
SUBSCRIPTION_SLOTS = 256

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")


def is_shutdown_race(exc: BaseException) -> bool:
    # notes, "Building a node": shutting down while messages flow raises this out of
    # Pubsub.continuously_read_stream.
    return isinstance(exc, RuntimeError) and "Nursery is closed to new arrivals" in str(exc)


def without_shutdown_race(exc: BaseException) -> BaseException | None:
    """``exc`` minus the shutdown-race errors in it; None if nothing else is left."""
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(is_shutdown_race)
        return rest
    return None if is_shutdown_race(exc) else exc


class GuardedPubsub(Pubsub):
    """A Pubsub whose inbound paths catch, count and drop what they cannot handle.

    In plain py-libp2p an exception escaping a stream handler ends the whole node. Its
    reader does not catch protobuf's DecodeError, and a message whose sender id is not an
    identity multihash, with a garbage key, makes signature verification raise inside
    ``push_msg`` (notes, "Hostile input"). Here both are contained.

    ``drops`` counts by reason: ``undecodable_rpc`` (the stream is reset; the peer's
    other streams and its pubsub state stay), ``invalid_message`` (that one message is
    dropped) and ``subscription_full`` (a burst found our subscription's
    ``SUBSCRIPTION_SLOTS`` full). ``on_drop(reason)`` is called for each, for metrics.
    """

    def __init__(
        self,
        host: IHost,
        router: GossipSub,
        *,
        on_drop: Callable[[str], None] | None = None,
        strict_signing: bool = True,
        max_inbound_rpc_size: int,
    ) -> None:
        super().__init__(
            host, router, strict_signing=strict_signing, max_inbound_rpc_size=max_inbound_rpc_size
        )
        self.drops: Counter[str] = Counter()
        self._on_drop = on_drop
        self._key_in_id = key_in_id(self.my_id)

    def _count_drop(self, reason: str) -> None:
        self.drops[reason] += 1
        if self._on_drop is not None:
            try:
                self._on_drop(reason)
            except Exception:
                logger.exception("on_drop callback failed")

    async def subscribe(self, topic_id: str) -> ISubscriptionAPI:
        # py-libp2p sizes the channel from a module constant, read before its first await.
        default = libp2p_pubsub.SUBSCRIPTION_CHANNEL_SIZE
        libp2p_pubsub.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_SLOTS
        try:
            return await super().subscribe(topic_id)
        finally:
            libp2p_pubsub.SUBSCRIPTION_CHANNEL_SIZE = default

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        # As py-libp2p's, but a message that finds the channel full is counted, not only
        # logged (a warning for each would flood the log in the very burst that caused it).
        for topic in publish_message.topicIDs:
            if topic in self.topic_ids:
                try:
                    self.subscribed_topics_send[topic].send_nowait(publish_message)
                except trio.WouldBlock:
                    self._count_drop("subscription_full")

    async def stream_handler(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().stream_handler(stream)
        except Exception as exc:
            if is_shutdown_race(exc):
                logger.debug("pubsub reader for %s stopped by shutdown", peer_id)
                return
            self._count_drop("undecodable_rpc")
            logger.warning("dropped pubsub stream from %s: %r", peer_id, exc)
            # Only the offending stream goes. Unlike the library's ParseError path we do
            # not forget the peer's subscriptions: that would silently stop our traffic
            # to a peer that is otherwise fine.
            with contextlib.suppress(Exception):
                await stream.reset()

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        # Every RPC py-libp2p writes but the hello (publishes, forwards, control) passes
        # here; the signed peer record it attaches to each is a quarter of a forwarded
        # digest's bytes and tells the receiver nothing identify has not
        # (adapters.lean_records).
        return await super().write_msg(stream, without_sender_record(rpc_msg))

    def get_hello_packet(self) -> rpc_pb2.RPC:
        # The first RPC on a new pubsub stream, written directly, not through write_msg.
        return without_sender_record(super().get_hello_packet())

    def _is_subscribed_to_msg(self, msg: rpc_pb2.Message) -> bool:
        # The reader asks this of each received message just before it spawns a task to
        # push it, and push_msg's first look then drops a copy already seen. Most copies
        # a mesh delivers are such duplicates: at 10 idle nodes the spawns alone were a
        # twentieth of a node's CPU (py-spy --gil, 2026-12-05). Dropping them here drops
        # nothing else: push_msg does nothing but return for a seen message.
        if not super()._is_subscribed_to_msg(msg):
            return False
        try:
            return not self._is_msg_seen(msg)
        except Exception:  # a malformed id is push_msg's to count and drop
            return True

    async def _replay_recent_messages(self, peer_id: ID, topic: str) -> None:
        # py-libp2p 0.8.1 sends every newly subscribed peer the whole message cache, one
        # RPC per message (gossipsub.send_recent_messages). Every reconnect paid for it: at
        # 20 nodes under load it was a fifth of a node's CPU (py-spy, 2026-11-28). A new
        # peer gets the cluster's state from the view pull (/chorus/health-view/1.0.0) in
        # one message, and an old probe is worth nothing to it.
        await trio.lowlevel.checkpoint()

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if msg_forwarder == self.my_id:
            # Our own publish: a failure here is ours and the caller should see it. Readers
            # take our key from our id (adapters.lean_records.key_in_id); the signature
            # does not cover the key field.
            if self._key_in_id:
                msg.ClearField("key")
            await super().push_msg(msg_forwarder, msg)
            return
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:
            if is_shutdown_race(exc):
                return
            self._count_drop("invalid_message")
            logger.warning("dropped a pubsub message forwarded by %s: %r", msg_forwarder, exc)
