"""The direct link over py-libp2p: ``probes.ports.DirectLink`` as one stream per message.

A message is one stream of its own protocol, written then closed: the reader takes the
sender's identity from the stream (authenticated by Noise) and the message ends at EOF.
Inbound streams are bounded (:class:`LibP2PLink`): only the senders a handler waits for
may open one, at most a few per peer and some dozens in all, each within a read timeout,
because hostile peers open streams for free (issue 12) and an exception escaping a
py-libp2p stream handler ends the whole node (notes, "Hostile input").

Also the wiring of the PubSub probe to a running node (:func:`probe_for_node`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from adapters.stream_read import read_to_eof
from probes.ports import LinkError, LinkHandler, SenderFilter
from probes.probe_responder import ProbeResponder
from probes.probe_wire import MAX_PROBE_BYTES, TOPIC
from probes.pubsub_probe import PubSubProbe

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

    from adapters.p2p_node import P2PNode

__all__ = [
    "DEFAULT_MAX_INBOUND",
    "DEFAULT_MAX_INBOUND_PER_PEER",
    "MAX_PEER_PROTOCOLS",
    "LibP2PLink",
    "gossip_topic_peers",
    "probe_for_node",
]

logger = logging.getLogger(__name__)

# Inbound answer streams (LibP2PLink). Only the peers named in one of our pending probes
# may open one at all (at most k = 3 per probe, 2 probes at once); everyone else is reset
# at once, before taking a slot. Honest load: a responder sends one answer per probe that
# names it, and an origin runs at most 2 probes at once (the active and the enhanced
# check), so an honest peer has at most 2 answer streams open to us; 4 leaves room for one
# still closing. The global limit covers many peers answering at once; both reset the
# excess at once instead of queueing it. Why a stream is dropped: STREAM_DROP_REASONS.
DEFAULT_MAX_INBOUND = 32
DEFAULT_MAX_INBOUND_PER_PEER = 4
# An honest answer is one small write then EOF, a few round trips; a stream still open
# after this is stalled (or a slowloris) and gives its slot back.
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_CLOSE_TIMEOUT = 2.0  # closing or resetting writes a frame; bounded like a read

# Identify's protocol list is the peer's own word, of any length: only this many of its
# entries are looked at. Honest nodes list a few dozen (py-libp2p and go-libp2p about 15 to
# 25); a mesh node that lists ours beyond this is simply not named.
MAX_PEER_PROTOCOLS = 256
# Pushing identify to the peers already connected (LibP2PLink.announce): one small stream
# each, a few milliseconds; a peer that stalls it must not hold the task.
DEFAULT_ANNOUNCE_TIMEOUT = 5.0
ANNOUNCE_CONCURRENCY = 8


class LibP2PLink:
    """:class:`DirectLink` over a py-libp2p host: one stream per message, ended by EOF.

    Inbound streams are bounded so that a peer that opens streams and never finishes them
    (a slowloris) cannot starve the others, however many identities it has: a handler's
    ``expected`` predicate refuses every sender it does not wait for before anything
    else; of the rest, at most ``max_inbound_per_peer`` streams per peer and
    ``max_inbound`` in all are read at once, and the excess is reset at once; every stream
    must reach EOF within ``read_timeout``, or it is reset and its slot freed. ``dropped``
    counts the streams dropped, by reason (:data:`STREAM_DROP_REASONS`).
    """

    def __init__(
        self,
        host: IHost,
        *,
        max_message_bytes: int = MAX_PROBE_BYTES,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_inbound: int = DEFAULT_MAX_INBOUND,
        max_inbound_per_peer: int = DEFAULT_MAX_INBOUND_PER_PEER,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if not 1 <= max_inbound_per_peer <= max_inbound:
            raise ValueError(
                f"need 1 <= max_inbound_per_peer <= max_inbound, got {max_inbound_per_peer},"
                f" {max_inbound}"
            )
        self._host = host
        self.peer_id: str = host.get_id().to_base58()
        self._max_bytes = max_message_bytes
        # A peer that opens a stream and never finishes it must not hold a slot forever.
        self._read_timeout = read_timeout
        # Closing or resetting writes a frame; a peer that stops reading its connection
        # could otherwise hold our task there.
        self._close_timeout = close_timeout
        self._max_inbound = max_inbound
        self._max_per_peer = max_inbound_per_peer
        self._inbound = 0
        self._per_peer: Counter[str] = Counter()  # open inbound streams by peer; no zeros
        self.dropped: Counter[str] = Counter()  # inbound streams dropped, by reason

    def inbound_from(self, peer_id: str) -> int:
        """Inbound streams of ``peer_id`` being read now."""
        return self._per_peer[peer_id]

    def connected_peers(self) -> list[str]:
        return [pid.to_base58() for pid in self._host.get_connected_peers()]

    def speaks(self, peer_id: str, protocol: str) -> bool:
        from libp2p.peer.id import ID

        # Everything here is a peer's word: a peer identify has not reached yet raises
        # PeerStoreError, and the list, however long, is cut to MAX_PEER_PROTOCOLS.
        try:
            listed = self._host.get_peerstore().get_protocols(ID.from_base58(peer_id))
            return any(p == protocol for p in itertools.islice(listed, MAX_PEER_PROTOCOLS))
        except Exception:
            return False

    async def announce(self, *, timeout: float = DEFAULT_ANNOUNCE_TIMEOUT) -> None:
        # py-libp2p answers identify with the handlers set at that moment and pushes
        # nothing when one is added later (basic_host.py, 0.8.1): a node that registered
        # ACK_PROTOCOL after its first connections stayed unnamed by those peers. Our own
        # limiter, not the library's module-wide one, which outlives a trio run.
        from libp2p.identity.identify_push import push_identify_to_peer

        limiter = trio.CapacityLimiter(ANNOUNCE_CONCURRENCY)
        with trio.move_on_after(timeout):
            try:
                async with trio.open_nursery() as nursery:
                    for pid in self._host.get_connected_peers():
                        nursery.start_soon(push_identify_to_peer, self._host, pid, None, limiter)
            except Exception as exc:  # push_identify_to_peer catches its own; belt and braces
                logger.info("identify push failed: %r", exc)

    async def send(self, peer_id: str, protocol: str, data: bytes) -> None:
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        try:
            pid = ID.from_base58(peer_id)
        except Exception as exc:
            raise LinkError(f"{peer_id!r} is not a base58 peer id") from exc
        try:
            stream = await self._host.new_stream(pid, [TProtocol(protocol)])
        except Exception as exc:
            raise LinkError(f"cannot open {protocol} to {peer_id}: {exc!r}") from exc
        try:
            await stream.write(data)
            await stream.close()
        except BaseException as exc:
            # Cancelled (a send timeout) included: never leave a half-written stream open.
            with trio.CancelScope(shield=True):
                await self._reset(stream)
            if isinstance(exc, Exception):
                raise LinkError(f"sending on {protocol} to {peer_id} failed: {exc!r}") from exc
            raise

    def set_handler(
        self, protocol: str, handler: LinkHandler, *, expected: SenderFilter | None = None
    ) -> None:
        from libp2p.custom_types import TProtocol

        async def on_stream(stream: INetStream) -> None:
            await self._serve(stream, handler, expected)

        self._host.set_stream_handler(TProtocol(protocol), on_stream)

    def _refusal(self, sender: str, expected: SenderFilter | None) -> str | None:
        # Whom we do not wait for is refused first: a stranger with many identities (8
        # of them, 4 streams each) otherwise held all 32 slots and kept the answers of
        # the peers we named out (issue 12).
        if expected is not None and not expected(sender):
            return "unexpected"
        # Per peer first: a peer over its own share is refused as such even when the
        # global limit is also reached, so the counter names the culprit's kind.
        if self._per_peer[sender] >= self._max_per_peer:
            return "per_peer"
        if self._inbound >= self._max_inbound:
            return "global"
        return None

    async def _serve(
        self, stream: INetStream, handler: LinkHandler, expected: SenderFilter | None
    ) -> None:
        # Everything a peer can cause is caught here: an exception escaping a py-libp2p
        # stream handler ends the whole node (notes, "Hostile input").
        try:
            sender = stream.muxed_conn.peer_id.to_base58()
            refusal = self._refusal(sender, expected)
        except Exception as exc:
            self.dropped["error"] += 1
            logger.info("dropped an inbound direct stream: %r", exc)
            await self._reset(stream)
            return
        if refusal is not None:
            # Refused at once, before any read: the slot we do not give is the point.
            self.dropped[refusal] += 1
            await self._reset(stream)
            return
        # Taken before the first await, so concurrent handlers see each other's slots.
        self._inbound += 1
        self._per_peer[sender] += 1
        try:
            data: bytes | None = None
            with trio.move_on_after(self._read_timeout) as read_scope:
                data = await read_to_eof(stream, self._max_bytes)
            if data is None:
                self.dropped["timeout" if read_scope.cancelled_caught else "too_large"] += 1
                await self._reset(stream)
                return
            with trio.move_on_after(self._close_timeout), contextlib.suppress(Exception):
                await stream.close()
            await handler(sender, data)
        except Exception as exc:
            self.dropped["error"] += 1
            logger.info("dropped an inbound direct message from %s: %r", sender, exc)
            await self._reset(stream)
        finally:
            self._inbound -= 1
            self._per_peer[sender] -= 1
            if self._per_peer[sender] <= 0:
                del self._per_peer[sender]  # the table holds only peers with open streams

    async def _reset(self, stream: INetStream) -> None:
        with trio.move_on_after(self._close_timeout), contextlib.suppress(Exception):
            await stream.reset()


# ------------------------------------------------------------------ the probe's wiring


def gossip_topic_peers(node: P2PNode) -> Callable[[], list[str]]:
    """``topic_peers`` for a P2PNode: the peers GossipSub knows subscribe to TOPIC."""

    def peers() -> list[str]:
        return [pid.to_base58() for pid in node.guarded_pubsub.peer_topics.get(TOPIC, ())]

    return peers


def probe_for_node(
    node: P2PNode, *, wanted: Callable[[str], bool] | None = None, **options: Any
) -> tuple[PubSubProbe, ProbeResponder]:
    """A probe and a responder wired to a running node; start the responder with
    ``await nursery.start(responder.run)``. ``wanted`` (a peer id -> bool) goes to both:
    the peers the probe names first and the only origins the responder answers. With an
    admission policy, pass "a member of the cluster view". ``options`` go to PubSubProbe."""
    link = LibP2PLink(node.host)
    probe = PubSubProbe(
        node.pubsub, link, topic_peers=gossip_topic_peers(node), wanted=wanted, **options
    )
    return probe, ProbeResponder(node.pubsub, link, wanted=wanted)
