"""Signed peer records without the per-RPC signature work.

py-libp2p 0.8.1 attaches the sender's signed peer record (an Ed25519-signed envelope of its
addresses) to every pubsub and Kademlia RPC it sends, and verifies and stores the one on
every RPC it receives; a Kademlia answer also carries one record per peer it lists. On a
10-node devnet that was about a fifth of a node's idle CPU (py-spy, 2026-11-28): 12 % in
``consume_envelope`` (an Ed25519 verify and a protobuf parse each time, for bytes that had
not changed) and 6 % in ``env_to_send_in_RPC`` (the host's addresses rebuilt and the
envelope re-serialized for every RPC sent).

:func:`install` wraps both functions where py-libp2p's modules imported them:

- receiving: a record whose exact bytes this host accepted from the same sender less than
  ``REVERIFY_AFTER`` seconds ago is accepted again without verifying. Same bytes, same
  sender, same verdict; the record was stored when it was first accepted, so only its
  address TTL (2 h) is not refreshed, and the periodic re-verification does that. (Our own
  nodes no longer put records on pubsub RPCs, ``adapters.lean_records``: from them it is
  identify, once per connection, and their Kademlia requests and answers that renew it;
  our redials name the addresses themselves.) Anything
  else (new bytes, a failure) goes to py-libp2p's own function, and failures are never
  cached.
- sending: the envelope a host built is reused for ``RESEND_FOR`` seconds. py-libp2p
  rebuilds it only when the host's listen addresses change, which for our nodes happens only
  at start-up.

Caches are per host (a weak mapping, so closed hosts take theirs with them) and bounded.
"""

from __future__ import annotations

import importlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_ENTRIES", "RESEND_FOR", "REVERIFY_AFTER", "install"]

REVERIFY_AFTER = 60.0  # seconds
RESEND_FOR = 5.0  # seconds
MAX_ENTRIES = 4096  # records remembered per host

# Where py-libp2p imported the functions by name (``from ... import``), so patching the
# defining module alone would not reach the callers.
_CONSUMERS = {
    "libp2p.pubsub.utils": (
        "libp2p.pubsub.pubsub",
        "libp2p.pubsub.gossipsub",
        "libp2p.pubsub.floodsub",
    ),
    "libp2p.kad_dht.utils": (
        "libp2p.kad_dht.kad_dht",
        "libp2p.kad_dht.peer_routing",
        "libp2p.kad_dht.value_store",
        "libp2p.kad_dht.provider_store",
    ),
}
_SENDERS = (
    "libp2p.pubsub.pubsub",
    "libp2p.pubsub.floodsub",
    "libp2p.pubsub.gossipsub",
    "libp2p.kad_dht.kad_dht",
    "libp2p.kad_dht.peer_routing",
    "libp2p.kad_dht.value_store",
    "libp2p.kad_dht.provider_store",
    "libp2p.identity.identify.identify",
)
_MARK = "__chorus_cached__"

Clock = Callable[[], float]
_clock: Clock = time.monotonic
_accepted: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[Any, bytes], float]] = (
    weakref.WeakKeyDictionary()
)
_sent: weakref.WeakKeyDictionary[Any, tuple[float, tuple[bytes, bool]]] = (
    weakref.WeakKeyDictionary()
)


def _record_bytes(msg: Any) -> bytes:
    # A pubsub or Kademlia RPC carries ``senderRecord``; a peer inside a Kademlia answer
    # carries ``signedRecord``.
    for name in ("senderRecord", "signedRecord"):
        try:
            if msg.HasField(name):
                return bytes(getattr(msg, name))
        except ValueError:  # the message type has no such field
            continue
    return b""


def cached_consumer(original: Callable[..., bool]) -> Callable[..., bool]:
    """``original(msg, host, peer_id=None) -> bool``, answered from the cache when it can."""

    def consume(msg: Any, host: Any, peer_id: Any = None) -> bool:
        raw = _record_bytes(msg)
        if not raw:
            return original(msg, host, peer_id)
        seen = _accepted.get(host)
        key = (peer_id, raw)
        now = _clock()
        if seen is not None:
            at = seen.get(key)
            if at is not None and now - at < REVERIFY_AFTER:
                return True
        ok = original(msg, host, peer_id)
        if ok:
            if seen is None:
                seen = _accepted.setdefault(host, OrderedDict())
            seen[key] = now
            seen.move_to_end(key)
            while len(seen) > MAX_ENTRIES:
                seen.popitem(last=False)
        return ok

    setattr(consume, _MARK, original)
    return consume


def cached_sender(original: Callable[[Any], tuple[bytes, bool]]) -> Callable[..., Any]:
    """``original(host) -> (envelope bytes, created)``, reused for ``RESEND_FOR`` seconds."""

    def envelope(host: Any) -> tuple[bytes, bool]:
        now = _clock()
        hit = _sent.get(host)
        if hit is not None and now - hit[0] < RESEND_FOR:
            return hit[1][0], False
        result = original(host)
        _sent[host] = (now, result)
        return result

    setattr(envelope, _MARK, original)
    return envelope


def install() -> None:
    """Wrap py-libp2p's record functions in every module that imported them. Idempotent."""
    for home, users in _CONSUMERS.items():
        original = importlib.import_module(home).maybe_consume_signed_record
        wrapped = cached_consumer(getattr(original, _MARK, original))
        for name in users:
            # Any: on a ModuleType mypy lets us read unknown attributes, not assign them.
            module: Any = importlib.import_module(name)
            if hasattr(module, "maybe_consume_signed_record"):
                module.maybe_consume_signed_record = wrapped
    peerstore = importlib.import_module("libp2p.peer.peerstore")
    build = peerstore.env_to_send_in_RPC
    sender = cached_sender(getattr(build, _MARK, build))
    for name in _SENDERS:
        module = importlib.import_module(name)
        if hasattr(module, "env_to_send_in_RPC"):
            module.env_to_send_in_RPC = sender
