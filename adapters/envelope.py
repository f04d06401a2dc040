"""Verify the GossipSub envelopes a pulled snapshot carries (``mesh.signed``).

A carried statement is py-libp2p's pubsub ``Message`` exactly as its author published it.
It verifies as the libp2p pubsub spec says (and py-libp2p's ``signature_validator`` does):
the signature over ``"libp2p-pubsub:" + Message{from, data, seqno, topicIDs}`` by the key of
``from``, taken from the peer ID itself for Ed25519 IDs or from ``key`` otherwise. On top of
that we require our topic and nothing else, so a message signed for another topic cannot be
passed off as health gossip.

Verifying costs an Ed25519 check (~0.1 ms); a node pulls the same unchanged statements from
every new peer, so verdicts are cached by the envelope's bytes, in a bounded LRU.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import signature_validator

from mesh.digest import TOPIC
from mesh.signed import Envelope
from mesh.wire_bounds import MAX_ENVELOPE_BYTES

__all__ = ["EnvelopeCache"]

logger = logging.getLogger(__name__)


class EnvelopeCache:
    """``open(raw) -> Envelope | None``: an ``EnvelopeVerifier`` with a bounded memory of
    verdicts (``size`` envelopes)."""

    def __init__(self, *, topic: str = TOPIC, size: int = 4096) -> None:
        self._topic = topic
        self._size = size
        self._verdicts: OrderedDict[bytes, Envelope | None] = OrderedDict()
        self.verified = 0  # signature checks actually run, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._verdicts)

    def open(self, raw: bytes) -> Envelope | None:
        key = hashlib.sha256(raw).digest()
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        verdict = self._verify(raw)
        self._verdicts[key] = verdict
        if len(self._verdicts) > self._size:
            self._verdicts.popitem(last=False)
        return verdict

    def _verify(self, raw: bytes) -> Envelope | None:
        if len(raw) > MAX_ENVELOPE_BYTES:
            return None
        try:
            msg = rpc_pb2.Message.FromString(raw)
            if list(msg.topicIDs) != [self._topic] or not msg.signature:
                return None
            self.verified += 1
            # Raises on a garbage key (py-libp2p notes, "Hostile input"): unproven.
            if not signature_validator(msg):
                return None
            signer = ID(msg.from_id).to_base58()
        except Exception as exc:
            logger.debug("carried statement does not verify: %r", exc)
            return None
        return Envelope(signer=signer, data=bytes(msg.data), raw=raw)
