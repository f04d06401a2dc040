"""What a hostile peer says on GossipSub (a part of :class:`~devnet.rogue.RoguePeer`):
arbitrary bytes, forged and signed health statements, floods straight onto a target's
stream, raw frames, and capture and replay of what others published.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from devnet.rogue_base import MAX_CAPTURED, MAX_FLOOD, _peer_id, _RogueState
from mesh.digest import TOPIC, encode_gossip
from mesh.messages import Gossip, HealthDigest, LeaveNotice, SuspectNotice, Version
from mesh.model import Status

if TYPE_CHECKING:
    # The node type from the layer below the toolkit (devnet.testing imports the rogue
    # peer, so importing devnet.testing back would close a circle).
    from devnet.sim_nodes import SimNode

# The rogue peer logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.rogue")


class _Gossip(_RogueState):
    """Publishing, forging, flooding, raw frames, capture and replay."""

    # -- publishing ------------------------------------------------------------------

    async def publish_raw(self, topic: str, data: bytes) -> None:
        """Arbitrary bytes on any topic, signed by us."""
        await self.node.guarded_pubsub.publish(topic, data)

    async def publish_gossip(self, message: Gossip) -> None:
        """A health statement, encoded as our nodes encode theirs, signed by us."""
        await self.publish_raw(TOPIC, encode_gossip(message))

    def forged_digest(self, as_node: SimNode | str, **fields: Any) -> HealthDigest:
        """A digest that names ``as_node`` as its author: it is our signature on it, so
        our nodes reject it as ``signer_mismatch``. ``fields`` override the defaults (an
        unhealthy, zero-score node with a high sequence number and a fresh date)."""
        self._seq += 1
        now_ms = int(time.time() * 1000)
        values: dict[str, Any] = {
            "node_id": _peer_id(as_node),
            "start_time_ms": now_ms - 60_000,
            "incarnation": 1_000,
            "seq": 1_000_000 + self._seq,
            "status": Status.UNHEALTHY,
            "score": 0.0,
            "sent_at_ms": now_ms,
        }
        values.update(fields)
        return HealthDigest(**values)

    async def forge_digest(self, as_node: SimNode | str, **fields: Any) -> HealthDigest:
        digest = self.forged_digest(as_node, **fields)
        await self.publish_gossip(digest)
        return digest

    async def forge_leave(self, as_node: SimNode | str, *, start_time_ms: int) -> None:
        """A leave notice in ``as_node``'s name (``signer_mismatch`` at every node)."""
        now_ms = int(time.time() * 1000)
        notice = LeaveNotice(
            node_id=_peer_id(as_node),
            start_time_ms=start_time_ms,
            incarnation=1_000,
            seq=1_000_000,
            sent_at_ms=now_ms,
        )
        await self.publish_gossip(notice)

    async def suspect(self, target: SimNode | str, basis: Version) -> None:
        """A correctly signed suspicion of ``target`` by us, a stranger to the mesh: the
        target must refute it and nobody may take it for a death."""
        notice = SuspectNotice(
            observer_id=self.peer_id,
            suspect_id=_peer_id(target),
            suspect_start_time_ms=basis.start_time_ms,
            suspect_incarnation=basis.incarnation,
            suspect_seq=basis.seq,
            sent_at_ms=int(time.time() * 1000),
        )
        await self.publish_gossip(notice)

    def sign(self, topic: str, data: bytes) -> rpc_pb2.Message:
        """A pubsub message on ``topic`` signed by us, as py-libp2p's publish signs it."""
        from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

        self._seq += 1
        host = self.node.host
        message = rpc_pb2.Message(
            data=data,
            topicIDs=[topic],
            from_id=host.get_id().to_bytes(),
            seqno=os.urandom(8),
        )
        message.signature = host.get_private_key().sign(
            PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString()
        )
        message.key = host.get_public_key().serialize()
        return message

    async def flood(
        self,
        target: SimNode | str,
        topic: str,
        *,
        count: int,
        rate: float,
        payload: bytes | Callable[[int], bytes] = b"\xff flood",
    ) -> int:
        """Send ``count`` signed messages on ``topic`` straight to ``target`` at ``rate`` a
        second (bounded by MAX_FLOOD), one RPC frame each on one GossipSub stream; returns
        how many were written. Straight, because our own GossipSub would stop forwarding
        our publishes beyond 10 a second (notes, "GossipSub"): a real flooder does not
        run an honest router. ``payload`` is the bytes, or a function of the index."""
        if not (0 < rate and 0 <= count <= MAX_FLOOD):
            raise ValueError(f"need rate > 0 and 0 <= count <= {MAX_FLOOD}")
        stream = await self.node.host.new_stream(
            ID.from_base58(_peer_id(target)), [PROTOCOL_ID_V11]
        )
        sent = 0
        started = trio.current_time()
        try:
            for i in range(count):
                await trio.sleep_until(started + i / rate)
                data = payload(i) if callable(payload) else payload
                frame = rpc_pb2.RPC(publish=[self.sign(topic, data)]).SerializeToString()
                try:
                    await stream.write(encode_varint_prefixed(frame))
                except Exception as exc:  # the target reset the stream: stop
                    logger.info("flood to %s stopped after %d: %r", self._name(target), sent, exc)
                    break
                sent += 1
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
        return sent

    # -- raw frames ------------------------------------------------------------------

    async def send_frame(self, target: SimNode | str, frame: bytes) -> None:
        """Bytes straight onto a GossipSub stream to ``target``, length-prefixed like an
        RPC frame: garbage here is what an undecodable RPC looks like."""
        stream = await self.node.host.new_stream(
            ID.from_base58(_peer_id(target)), [PROTOCOL_ID_V11]
        )
        try:
            await stream.write(encode_varint_prefixed(frame))
        finally:
            with contextlib.suppress(Exception):
                await stream.close()

    @staticmethod
    def garbage_message(topic: str = TOPIC, data: bytes = b"x") -> rpc_pb2.Message:
        """A pubsub message whose sender id is no identity multihash and whose key and
        signature are noise: signature verification raises on it (in plain py-libp2p,
        inside ``push_msg``, which stopped the whole pubsub service)."""
        return rpc_pb2.Message(
            data=data,
            topicIDs=[topic],
            from_id=b"\x12\x20" + os.urandom(32),
            seqno=os.urandom(8),
            signature=os.urandom(64),
            key=b"\x08\x01\x12\x20" + os.urandom(7),
        )

    async def inject(self, target: SimNode | str, *messages: rpc_pb2.Message) -> None:
        """Signed pubsub messages (ours or captured) in one RPC frame to ``target``."""
        rpc = rpc_pb2.RPC(publish=list(messages))
        await self.send_frame(target, rpc.SerializeToString())

    # -- capture and replay ----------------------------------------------------------

    async def capture(self, topic: str = TOPIC) -> None:
        """Start keeping every message on ``topic`` as received: signed, replayable."""
        if topic in self._captured:
            return
        box: deque[rpc_pb2.Message] = deque(maxlen=MAX_CAPTURED)
        self._captured[topic] = box
        subscription = await self.node.guarded_pubsub.subscribe(topic)

        async def drain() -> None:
            async for message in subscription:
                box.append(message)

        self._nursery.start_soon(drain)

    async def stop_capture(self, topic: str = TOPIC) -> None:
        """Unsubscribe from ``topic``: we stop receiving, and stop relaying, its messages
        (a subscribed rogue is also an ordinary GossipSub forwarder). What was captured
        stays available."""
        await self.node.guarded_pubsub.unsubscribe(topic)

    def captured(
        self, topic: str = TOPIC, *, origin: SimNode | str | None = None
    ) -> list[rpc_pb2.Message]:
        """Messages captured on ``topic`` so far, oldest first, optionally by origin."""
        messages = list(self._captured.get(topic, ()))
        if origin is None:
            return messages
        wanted = ID.from_base58(_peer_id(origin)).to_bytes()
        return [m for m in messages if m.from_id == wanted]

    async def replay(self, message: rpc_pb2.Message, *, to: SimNode | str) -> None:
        """Send a captured message again, byte for byte (its origin's signature intact)."""
        await self.inject(to, message)
