"""A hostile libp2p peer under the test's control.

:class:`RoguePeer` is a real py-libp2p node (``adapters.libp2p_host.open_p2p_node``: Noise,
Yamux, GossipSub with strict signing, Kademlia in server mode) that does what a broken or
malicious peer would: publish arbitrary bytes on any topic, forge health statements in
another node's name, replay messages it captured, write undecodable frames onto a
GossipSub stream, answer probes wrongly or never, hold streams open without finishing them
(a slowloris), serve corrupted DHT values, push values and records our nodes must refuse,
and flood. Everything it sends is signed with its own key, as GossipSub's strict signing
demands; a statement that names another node as its author is therefore a forgery our
nodes can tell (``signer_mismatch``).

Get one from a simulation (``async with net.rogue(connect_to=[node]) as rogue``), or stand
alone with :func:`open_rogue`. Every flood is bounded by a count and a rate.

A stranger also mints identities for free and gives each a connection of its own:
:func:`open_crowd` makes such a :class:`Crowd` (bare hosts, each with a fresh key) that
publishes probes signed by each identity over its own connection, holds streams open from
all of them, and stalls the negotiation of streams the targets open back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from adapters.libp2p_host import P2PConfig, P2PNode, open_p2p_node
from adapters.libp2p_link import LibP2PLink
from devnet.forge import Identity, mint, sign
from mesh.digest import (
    TOPIC,
    Gossip,
    HealthDigest,
    LeaveNotice,
    SuspectNotice,
    Version,
    encode_gossip,
)
from mesh.model import Status
from probes.probe_wire import ACK_PROTOCOL, Ack, WireError, decode_probe
from probes.probe_wire import TOPIC as PROBE_TOPIC

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from libp2p.kad_dht.pb.kademlia_pb2 import Record
    from trio_typing import TaskStatus

    from devnet.testing import SimNode

__all__ = [
    "PROBE_TOPIC",
    "TOPIC",
    "Crowd",
    "CrowdMember",
    "HeldStreams",
    "ProbeMode",
    "RoguePeer",
    "open_crowd",
    "open_rogue",
]

logger = logging.getLogger(__name__)

ProbeMode = Literal["honest", "wrong", "never", "garbage"]

MAX_CAPTURED = 1024  # messages kept per topic
MAX_FLOOD = 100_000  # no flood sends more, whatever it is asked
MAX_HELD = 1024  # streams one hold_streams may open


class HeldStreams:
    """What :meth:`RoguePeer.hold_streams` holds: streams tried, opened, ended by the
    target."""

    def __init__(self) -> None:
        self.attempted = 0
        self.opened = 0
        self.ended = 0  # refused, reset or closed by the target
        self._changed = trio.Event()

    def _opened(self) -> None:
        self.opened += 1
        self._notify()

    def _ended(self) -> None:
        self.ended += 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    @property
    def open(self) -> int:
        """Streams we hold that the target has not ended."""
        return self.attempted - self.ended

    async def until_ended(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until the target has ended at least ``count`` of them (TooSlowError)."""
        with trio.fail_after(timeout):
            while self.ended < count:
                await self._changed.wait()


class RoguePeer:
    """A hostile peer. ``node`` is its running :class:`~adapters.libp2p_host.P2PNode`."""

    def __init__(self, node: P2PNode, nursery: trio.Nursery, names: Mapping[str, str]) -> None:
        self.node = node
        self.peer_id = node.peer_id
        self._nursery = nursery
        self._names = dict(names)  # peer id -> simulation name, for messages only
        self._captured: dict[str, deque[rpc_pb2.Message]] = {}
        self._seq = 0
        self.probe_mode: ProbeMode = "honest"
        self.probes_seen = 0
        self.probe_answers_sent = 0
        self.dht_gets_corrupted = 0
        self._link = LibP2PLink(node.host)
        self._corrupting = False
        self._original_get: Callable[[bytes], Record | None] | None = None
        self._answering = False

    def _name(self, target: SimNode | str) -> str:
        peer = _peer_id(target)
        return self._names.get(peer, peer)

    # -- links -----------------------------------------------------------------------

    @property
    def addr(self) -> str:
        return self.node.listen_addrs[0]

    async def connect(self, target: SimNode | str) -> str:
        """Connect to a simulation node (or a multiaddr). An in-process node dials us, as
        it would a bootstrap peer, so that we are in its Kademlia routing table too;
        anything else we dial. Returns the peer id."""
        handle = getattr(target, "handle", None)
        if handle is not None and getattr(target, "running", False):
            await handle.p2p.connect(self.addr)
            return str(target.peer_id)  # type: ignore[union-attr]
        addr = target if isinstance(target, str) else target.p2p_addr
        return await self.node.connect(addr)

    async def disconnect(self, target: SimNode | str) -> None:
        with contextlib.suppress(Exception):
            await self.node.host.disconnect(ID.from_base58(_peer_id(target)))

    async def until_subscribed(
        self, target: SimNode | str, topic: str = TOPIC, timeout: float = 15.0
    ) -> None:
        """Wait until GossipSub tells us ``target`` subscribes to ``topic`` and our own
        pubsub stream to it is up (so that our publishes reach it). Raises TimeoutError."""
        pid = ID.from_base58(_peer_id(target))
        pubsub = self.node.guarded_pubsub
        with trio.fail_after(timeout):
            # Polling: py-libp2p offers no event for either. Its subscription arrives on
            # the target's stream to us, but GossipSub picks publish targets only among
            # peers our own stream reached (router.peer_protocol): under load that came
            # later, and what we published in between went to nobody.
            def ready() -> bool:
                return (
                    pid in pubsub.peer_topics.get(topic, ())
                    and pid in pubsub.peers
                    and pid in pubsub.router.peer_protocol
                )

            while not ready():  # noqa: ASYNC110
                await trio.sleep(0.05)

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

    # -- probes ----------------------------------------------------------------------

    async def answer_probes(self, mode: ProbeMode) -> None:
        """How we answer PubSub probes that name us: ``wrong`` (a hash of other bytes),
        ``garbage`` (not an answer at all), ``never`` (subscribed, silent) or ``honest``.
        Subscribes to the probe topic and claims the answer protocol in identify (pushed
        to the peers already connected), so probing nodes name us as a mesh node: a claim
        costs a hostile peer nothing."""
        self.probe_mode = mode
        if self._answering:
            return
        self._answering = True
        # Streams to us on it are refused at once: the claim is all we want of it.
        self._link.set_handler(ACK_PROTOCOL, _ignore_answer, expected=lambda _sender: False)
        await self._link.announce()
        subscription = await self.node.guarded_pubsub.subscribe(PROBE_TOPIC)

        async def answer() -> None:
            async for message in subscription:
                try:
                    probe = decode_probe(message.data)
                except WireError:
                    continue
                if self.peer_id not in probe.responders or self.probe_mode == "never":
                    continue
                self.probes_seen += 1
                if self.probe_mode == "wrong":
                    data = Ack(probe.nonce, hashlib.sha256(b"not the payload").hexdigest()).encode()
                elif self.probe_mode == "garbage":
                    data = b"\xff\xfe this is not an answer"
                else:
                    data = Ack(probe.nonce, hashlib.sha256(probe.payload).hexdigest()).encode()
                self._nursery.start_soon(self._send_answer, probe.origin, data)

        self._nursery.start_soon(answer)

    async def _send_answer(self, origin: str, data: bytes) -> None:
        try:
            with trio.fail_after(5):
                await self._link.send(origin, ACK_PROTOCOL, data)
            self.probe_answers_sent += 1
        except Exception as exc:
            logger.info("rogue probe answer to %s failed: %r", self._name(origin), exc)

    # -- held streams (slowloris) -----------------------------------------------------

    @asynccontextmanager
    async def hold_streams(
        self,
        target: SimNode | str,
        protocol: str,
        count: int,
        *,
        data: bytes = b"",
        timeout: float = 10.0,
    ) -> AsyncIterator[HeldStreams]:
        """Open ``count`` streams on ``protocol`` to ``target`` (at most MAX_HELD, all
        within ``timeout`` seconds), write ``data`` on each (nothing by default, or the
        first bytes of a message) and never finish them: a slowloris. Yields a
        :class:`HeldStreams` that counts the streams the target ended: reset or closed,
        or refused so fast that opening failed (py-libp2p's ``new_stream`` reads the
        protocol confirmation lazily, and a reset that comes first fails it). On exit the
        ones still open are reset."""
        if not 0 <= count <= MAX_HELD:
            raise ValueError(f"need 0 <= count <= {MAX_HELD}, got {count}")
        hosts = [self.node.host] * count
        async with _held_streams(hosts, _peer_id(target), protocol, data, timeout) as held:
            yield held

    @staticmethod
    async def _watch_held(stream: INetStream, held: HeldStreams) -> None:
        # We never write again; a read returns or raises only when the target closes or
        # resets its side (it sends nothing on these protocols).
        with contextlib.suppress(Exception):
            while await stream.read(1024):
                pass
        held._ended()

    # -- DHT -------------------------------------------------------------------------

    def corrupt_dht(self, enabled: bool = True) -> None:
        """Serve every DHT value we hold with its bits flipped and no signature: a peer
        that answers GET_VALUE with whatever it likes (py-libp2p readers do not verify)."""
        store = self.node.kad.value_store
        if self._original_get is None:
            self._original_get = store.get
        original = self._original_get

        def get(key: bytes) -> Record | None:
            record = original(key)
            if record is None or not self._corrupting:
                return record
            from libp2p.kad_dht.pb.kademlia_pb2 import Record

            bad = Record()
            bad.CopyFrom(record)
            bad.value = bytes(b ^ 0x5A for b in record.value)
            bad.signature = b""  # unsigned: served as is
            self.dht_gets_corrupted += 1
            return bad

        self._corrupting = enabled
        store.get = get  # type: ignore[method-assign]

    async def put_dht(
        self,
        target: SimNode | str,
        key: str | bytes,
        value: bytes,
        *,
        signature: bytes | None = None,
        author: bytes = b"",
    ) -> bool:
        """A PUT_VALUE of any key and value straight to ``target``, signed by us (our own
        validator is bypassed). Returns whether the target acknowledged storing it.

        ``signature`` replaces the record's signature field with any bytes, and the
        author is then ``author`` (empty by default): py-libp2p 0.8.1 verifies a record's
        signature only when both fields are set (``kad_dht.py``, PUT_VALUE handler), and
        its validators see only the key and the value, so a huge signature with no author
        is what a plain node stores whole (notes, "Kademlia")."""
        raw_key = key.encode() if isinstance(key, str) else key
        store = self.node.kad.value_store
        peer = ID.from_base58(_peer_id(target))
        record = None
        if signature is not None:
            from libp2p.kad_dht.pb.kademlia_pb2 import Record

            record = Record(key=raw_key, value=value, signature=signature, author=author)
        with trio.fail_after(10):
            return bool(await store._store_at_peer(peer, raw_key, value, record=record))

    # -- view pulls ------------------------------------------------------------------

    async def pull_view(self, target: SimNode | str, request: bytes = b"\x01") -> bytes | None:
        """One request on the view-pull protocol; the answer, or None when refused."""
        from adapters.gossip import PULL_PROTOCOL

        try:
            stream = await self.node.host.new_stream(
                ID.from_base58(_peer_id(target)), [TProtocol(PULL_PROTOCOL)]
            )
            await stream.write(request)
            await getattr(stream, "close_write", stream.close)()
            data = b""
            with trio.fail_after(5):
                while True:
                    try:
                        chunk = await stream.read(65536)
                    except Exception:
                        break
                    if not chunk:
                        break
                    data += chunk
            return data or None
        except Exception:
            return None


def _peer_id(target: Any) -> str:
    if isinstance(target, str):
        return target.rsplit("/p2p/", 1)[-1]
    return str(target.peer_id)


@asynccontextmanager
async def open_rogue(
    key_file: Path, *, names: Mapping[str, str] | None = None
) -> AsyncIterator[RoguePeer]:
    """A running rogue peer on 127.0.0.1 with a key of its own; stopped on exit."""
    config = P2PConfig(key_file=key_file, listen_port=0)
    async with open_p2p_node(config) as node, trio.open_nursery() as nursery:
        rogue = RoguePeer(node, nursery, names or {})
        await rogue.capture(TOPIC)
        try:
            yield rogue
        finally:
            nursery.cancel_scope.cancel()


# -- many identities, one connection each (issue 12) ---------------------------------------

MAX_CROWD = 256  # identities one crowd may have


class _StallingCommunicator:
    """A multistream-select communicator that never answers a proposal of ``protocols``:
    the dialler's negotiation hangs until its own timeout (py-libp2p: 30 s)."""

    def __init__(self, inner: Any, protocols: frozenset[str], crowd: Crowd) -> None:
        self._inner = inner
        self._protocols = protocols
        self._crowd = crowd

    async def read(self) -> str:
        command: str = await self._inner.read()
        if command in self._protocols:
            self._crowd._stalled()
            await self._crowd._released.wait()  # set when the crowd goes
        return command

    async def write(self, msg_str: str) -> None:
        await self._inner.write(msg_str)


@dataclass(frozen=True, slots=True)
class CrowdMember:
    """One identity of a :class:`Crowd`: a bare libp2p host (Noise, Yamux, no pubsub, no
    DHT, not listening) with a fresh Ed25519 key."""

    host: IHost
    identity: Identity

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


class Crowd:
    """Identities a stranger mints for free, each holding a libp2p connection of its own
    to the targets: what per-peer limits and per-origin budgets must withstand. Get one
    with :func:`open_crowd`.

    Each member can publish messages it signed itself straight to a target over its own
    GossipSub stream (:meth:`publish`, :meth:`flood_probes`), hold streams open
    (:meth:`hold_streams`), and stall the negotiation of streams the targets open to it
    (:meth:`stall`). Members do not speak the probe-answer protocol unless stalling it:
    an answer to them fails at once. Every loop is bounded by a count."""

    def __init__(self, members: list[CrowdMember], names: Mapping[str, str]) -> None:
        self.members = members
        self._names = dict(names)
        self.stalled = 0  # inbound stream negotiations stalled so far
        self.probes_written = 0  # by flood_probes, one per probe and target
        self._released = trio.Event()
        self._changed = trio.Event()
        # One GossipSub stream per (member, target), opened on first use.
        self._pubsub_streams: dict[tuple[str, str], INetStream] = {}

    @property
    def peer_ids(self) -> list[str]:
        return [m.peer_id for m in self.members]

    def _stalled(self) -> None:
        self.stalled += 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds, checked whenever a counter here changes
        (``stalled``, ``probes_written``); TooSlowError after ``timeout``."""
        with trio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def stall(self, protocol: str) -> None:
        """From now on every member accepts streams the targets open on ``protocol`` and
        never finishes negotiating them (until the crowd goes): an origin that asks for
        probe answers and never takes them."""
        protocols = frozenset({protocol})
        for member in self.members:
            muxer: Any = member.host.get_mux()
            original = muxer.negotiate

            async def negotiate(
                communicator: Any, negotiate_timeout: int = 30, *, _original: Any = original
            ) -> Any:
                wrapped = _StallingCommunicator(communicator, protocols, self)
                return await _original(wrapped, negotiate_timeout)

            muxer.negotiate = negotiate

    def probe(self, member: CrowdMember, responders: list[str], nonce: int) -> bytes:
        """A well-formed probe from ``member`` naming ``responders``."""
        from probes.probe_wire import ProbeMessage

        payload = nonce.to_bytes(8, "big")
        return ProbeMessage(
            nonce=f"{nonce:032x}",
            origin=member.peer_id,
            sent_at=time.time(),
            payload=payload,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            responders=tuple(responders),
        ).encode()

    async def publish(
        self, member: CrowdMember, target: SimNode | str, topic: str, data: bytes
    ) -> None:
        """``data`` on ``topic``, signed by ``member``, as one RPC frame on the member's
        own GossipSub stream to ``target`` (opened on first use): the target takes it as
        published by that identity, over that identity's connection."""
        await self._write(member, _peer_id(target), sign(member.identity, data, topic=topic))

    async def _write(self, member: CrowdMember, target_id: str, message: rpc_pb2.Message) -> None:
        key = (member.peer_id, target_id)
        stream = self._pubsub_streams.get(key)
        if stream is None:
            stream = await member.host.new_stream(ID.from_base58(target_id), [PROTOCOL_ID_V11])
            self._pubsub_streams[key] = stream
        frame = rpc_pb2.RPC(publish=[message]).SerializeToString()
        await stream.write(encode_varint_prefixed(frame))

    async def flood_probes(
        self,
        targets: list[SimNode | str],
        *,
        rounds: int,
        per_second: float,
        first_nonce: int = 1,
    ) -> int:
        """Every member probes, naming every target, ``per_second`` times a second for
        ``rounds`` rounds (the probes of a round spread evenly over it), each probe signed
        once and written to every target. Returns how many probes were written; a target that
        refuses a member's stream stops that member's probes to it."""
        if not (per_second > 0 and 0 <= rounds * len(self.members) <= MAX_FLOOD):
            raise ValueError(f"need per_second > 0 and at most {MAX_FLOOD} probes")
        responders = [_peer_id(t) for t in targets]
        count = rounds * len(self.members)
        gap = 1.0 / (per_second * len(self.members))
        started = trio.current_time()
        written = 0
        failed: set[tuple[str, str]] = set()
        for i in range(count):
            await trio.sleep_until(started + i * gap)
            member = self.members[i % len(self.members)]
            # One signed message to every target, as a publish would send it: the targets'
            # GossipSub takes a copy forwarded by another target as the same message.
            probe = self.probe(member, responders, first_nonce + i)
            message = sign(member.identity, probe, topic=PROBE_TOPIC)
            for target in responders:
                if (member.peer_id, target) in failed:
                    continue
                try:
                    await self._write(member, target, message)
                except Exception as exc:
                    failed.add((member.peer_id, target))
                    logger.info("crowd probes to %s stopped: %r", self._name(target), exc)
                    continue
                written += 1
                self.probes_written += 1
                self._notify()
        return written

    @asynccontextmanager
    async def hold_streams(
        self,
        target: SimNode | str,
        protocol: str,
        per_member: int,
        *,
        data: bytes = b"",
        timeout: float = 10.0,
    ) -> AsyncIterator[HeldStreams]:
        """:meth:`RoguePeer.hold_streams` from every member: ``per_member`` streams each
        (at most MAX_HELD in all), opened within ``timeout`` seconds, never finished. On
        exit the ones still open are reset."""
        if not 0 <= per_member * len(self.members) <= MAX_HELD:
            raise ValueError(f"need 0 <= per_member x members <= {MAX_HELD}")
        hosts = [member.host for member in self.members for _ in range(per_member)]
        async with _held_streams(hosts, _peer_id(target), protocol, data, timeout) as held:
            yield held

    def _name(self, target: SimNode | str) -> str:
        peer = _peer_id(target)
        return self._names.get(peer, peer)


async def _ignore_answer(sender: str, data: bytes) -> None:
    await trio.lowlevel.checkpoint()


def _bare_host() -> IHost:
    from libp2p import new_host
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux

    key_pair = mint().key_pair
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        # As our nodes: one connection per peer, no py-libp2p health monitor.
        connection_config=ConnectionConfig(
            max_connections_per_peer=1, enable_health_monitoring=False
        ),
    )


@asynccontextmanager
async def open_crowd(
    count: int,
    *,
    connect_to: Iterable[SimNode | str],
    names: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[Crowd]:
    """``count`` fresh identities (at most MAX_CROWD), each a bare libp2p host connected
    to every target in ``connect_to`` (simulation nodes or ``/p2p/`` multiaddrs) within
    ``timeout`` seconds; closed on exit."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr  # type: ignore[import-untyped]  # ships no py.typed

    if not 0 <= count <= MAX_CROWD:
        raise ValueError(f"need 0 <= count <= {MAX_CROWD}, got {count}")
    addrs = [t if isinstance(t, str) else t.p2p_addr for t in connect_to]
    body_error: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            # One task per host, all in one nursery: a failure in the body leaves in one
            # exception group (unwrapped below), not in one per host.
            hosts: list[IHost] = [await nursery.start(_run_bare_host) for _ in range(count)]
            crowd = Crowd([CrowdMember(h, Identity.of_host(h)) for h in hosts], names or {})
            try:
                with trio.fail_after(timeout):
                    for host in hosts:
                        for addr in addrs:
                            await host.connect(info_from_p2p_addr(Multiaddr(addr)))
                yield crowd
            except BaseException as exc:
                body_error.append(exc)
                raise
            finally:
                crowd._released.set()  # stalled negotiations give up
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    async with trio.open_nursery() as closing:
                        for host in hosts:
                            closing.start_soon(_close_quietly, host)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if body_error and len(leaves) == 1 and leaves[0] is body_error[0]:
            raise body_error[0] from None
        raise


async def _run_bare_host(*, task_status: TaskStatus[IHost]) -> None:
    host = _bare_host()
    async with host.run(listen_addrs=[]):
        task_status.started(host)
        await trio.sleep_forever()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _close_quietly(host: IHost) -> None:
    with contextlib.suppress(Exception):
        await host.close()


@asynccontextmanager
async def _held_streams(
    hosts: Sequence[IHost], target: str, protocol: str, data: bytes, timeout: float
) -> AsyncIterator[HeldStreams]:
    """One never-finished stream to ``target`` from each of ``hosts`` (a host listed n
    times opens n); see :meth:`RoguePeer.hold_streams`."""
    pid = ID.from_base58(target)
    held = HeldStreams()
    streams: list[INetStream] = []
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(timeout):
                for host in hosts:
                    held.attempted += 1
                    try:
                        stream = await host.new_stream(pid, [TProtocol(protocol)])
                    except Exception as exc:
                        logger.info("held stream to %s refused: %r", target, exc)
                        held._ended()
                        continue
                    streams.append(stream)
                    held._opened()
                    if data:
                        with contextlib.suppress(Exception):  # refused already
                            await stream.write(data)
                    nursery.start_soon(RoguePeer._watch_held, stream, held)
            try:
                yield held
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for stream in streams:
                with contextlib.suppress(Exception):
                    await stream.reset()
