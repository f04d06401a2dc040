"""How a hostile peer abuses the nodes' other protocols (a part of
:class:`~devnet.rogue.RoguePeer`): probe answers wrong, garbled or never sent, streams
held open, corrupted or oversized DHT values, and view pulls.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from devnet.rogue_base import ProbeMode, _peer_id, _RogueState
from devnet.rogue_held import MAX_HELD, HeldStreams, _held_streams, _watch_held
from probes.probe_wire import ACK_PROTOCOL, Ack, WireError, decode_probe
from probes.probe_wire import TOPIC as PROBE_TOPIC

if TYPE_CHECKING:
    from libp2p.kad_dht.pb.kademlia_pb2 import Record

    # The node type from the layer below the toolkit (devnet.testing imports the rogue
    # peer, so importing devnet.testing back would close a circle).
    from devnet.sim_nodes import SimNode

# The rogue peer logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.rogue")


class _Services(_RogueState):
    """Probe answers, held streams, the DHT and view pulls."""

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
                    probe = decode_probe(message.data, ID(message.from_id).to_base58())
                except WireError:
                    continue
                if not probe.names(self.peer_id) or self.probe_mode == "never":
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

    _watch_held = staticmethod(_watch_held)  # the watch of one held stream

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
        from adapters.view_pull import PULL_PROTOCOL

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


async def _ignore_answer(sender: str, data: bytes) -> None:
    await trio.lowlevel.checkpoint()
