"""What the probes need from the network: three small interfaces, owned here.

The probes sit above the pure core (``mesh``) and below the edges (``adapters``), so the
interfaces they call are theirs, and the edges implement them, as httpcore's backends
implement ``_backends/base.py`` (issue 16): ``adapters.pubsub`` (GossipSub and a fake),
``adapters.dht`` (Kademlia and a fake), ``adapters.libp2p_link`` (streams), with the
direct link's fake in :mod:`probes.memory_link`. Imports run one way: nothing here knows
py-libp2p.

- :class:`PubSub`: subscribe, publish, validate; messages carry their signed origin.
- :class:`DHT`: put and get values under the ``/chorus-health/<32 hex>`` key namespace,
  whose rule (:func:`check_key`) both sides of every implementation enforce.
- :class:`DirectLink`: one-shot messages to a peer over a stream of their own protocol,
  with the peer's identity taken from the transport.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DHT",
    "NAMESPACE",
    "STREAM_DROP_REASONS",
    "DHTError",
    "DirectLink",
    "InvalidRecord",
    "LinkError",
    "LinkHandler",
    "MessageHandler",
    "MessageValidator",
    "PubSub",
    "PubSubMessage",
    "SenderFilter",
    "check_key",
    "health_key",
]

# --------------------------------------------------------------------------- pubsub


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    topic: str
    data: bytes
    from_peer: str  # base58 peer id of the origin (signed), not of the forwarder
    seqno: bytes
    # The message as its origin signed it (libp2p's pubsub Message, signature included), for
    # passing on verifiably (mesh.signed); empty where there is no signature (the fake).
    envelope: bytes = b""


MessageHandler = Callable[[PubSubMessage], Awaitable[None]]
# Synchronous on purpose: py-libp2p runs async validators under a 5 s timeout and a
# semaphore; ours are cheap checks (size, shape, signature of our own envelope).
MessageValidator = Callable[[PubSubMessage], bool]


class PubSub(Protocol):
    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        """Call ``handler`` for every message on ``topic`` (own publishes included)."""

    async def publish(self, topic: str, data: bytes) -> None:
        """Sign and send ``data`` on ``topic``; returns normally even if dropped."""

    def set_validator(self, topic: str, fn: MessageValidator) -> None:
        """Messages on ``topic`` for which ``fn`` returns False (or raises) are dropped."""


# ------------------------------------------------------------------------------ dht

NAMESPACE = "chorus-health"
# Keys longer than 50 bytes that are not multihashes make remote FIND_NODE fail and
# lookups fall back to the local table silently (py-libp2p notes, "Kademlia"): 47 bytes.
_KEY_RE = re.compile(r"^/chorus-health/[0-9a-f]{32}$")


class DHTError(Exception):
    """A DHT operation failed for a reason the caller should see (not "value not found")."""


class InvalidRecord(DHTError, ValueError):
    """A key is not ``/chorus-health/<32 hex>`` or a value exceeds the size limit."""


def health_key(key_id: str) -> str:
    """Build a DHT key from 32 lowercase hex characters (e.g. ``digest.hex()[:32]``)."""
    key = f"/{NAMESPACE}/{key_id}"
    check_key(key)
    return key


def check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise InvalidRecord(
            f"DHT key {key!r} is not /{NAMESPACE}/<32 lowercase hex chars>; longer keys "
            "break remote FIND_NODE in py-libp2p 0.8.1"
        )


class DHT(Protocol):
    """What the mesh needs from a DHT."""

    async def put_value(self, key: str, value: bytes) -> None:
        """Store locally and at the closest peers; raises InvalidRecord for bad input."""

    async def put_at_closest(self, key: str, value: bytes, replicas: int) -> list[str]:
        """Store at the ``replicas`` peers a network lookup finds closest to ``key``, not
        locally; the peers (base58 ids) that accepted. InvalidRecord for bad input."""

    async def get_value(self, key: str) -> bytes | None:
        """The local copy if there is one, else the first valid answer from the network."""

    async def get_from_peer(self, peer_id: str, key: str) -> bytes | None:
        """Ask exactly one peer (base58 id) for its copy; None if it has none or fails."""

    def local_peers(self) -> list[str]:
        """Peers in our routing table (base58 ids)."""


# ---------------------------------------------------------------------- direct link


class LinkError(Exception):
    """A direct message could not be delivered (no connection, stream refused, reset)."""


# Called with the sender's peer id (authenticated by the transport) and the whole message.
LinkHandler = Callable[[str, bytes], Awaitable[None]]
# Whether a peer may send on a protocol at all, asked before its stream takes any slot.
SenderFilter = Callable[[str], bool]

# Why a link drops an inbound stream (``DirectLink.dropped``): the sender is not one we
# wait for (unexpected: not named in a pending probe, or its answer is already in; late
# honest answers land here too, so it is no alarm by itself); refused at once because the
# peer already has its share of streams open (per_peer) or all slots are taken (global);
# stalled past the read timeout (timeout); over the message limit (too_large); anything
# else (error).
STREAM_DROP_REASONS = ("unexpected", "per_peer", "global", "timeout", "too_large", "error")


class DirectLink(Protocol):
    """One-shot messages to a peer over a stream of their own protocol."""

    peer_id: str  # ours, base58
    dropped: Counter[str]  # inbound messages dropped before the handler, by reason

    def connected_peers(self) -> list[str]:
        """Peers with an open connection (base58)."""

    def speaks(self, peer_id: str, protocol: str) -> bool:
        """Whether ``peer_id`` says it supports ``protocol`` (identify); False when it has
        not told us. Never raises."""

    async def announce(self) -> None:
        """Tell the connected peers our protocols again: peers that identified us before a
        handler was set do not know of it otherwise. Bounded; never raises but Cancelled."""

    async def send(self, peer_id: str, protocol: str, data: bytes) -> None:
        """Open a stream, write ``data``, close. Raises LinkError."""

    def set_handler(
        self, protocol: str, handler: LinkHandler, *, expected: SenderFilter | None = None
    ) -> None:
        """Call ``handler(sender, data)`` for each whole inbound message on ``protocol``.

        With ``expected``, a sender for which it is false is refused at once (counted as
        ``unexpected``), before its stream takes a slot or a byte is read."""
