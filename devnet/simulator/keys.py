"""Real libp2p identities and envelopes: every simulated statement is signed and verified.

A node's statements travel as py-libp2p pubsub ``Message``s signed the way our nodes'
``GuardedPubsub`` publishes them under strict signing (the key over
``"libp2p-pubsub:" + Message{from, data, seqno, topicIDs}``), so the envelope bytes, their
size on the wire and the signature check a receiver runs are the real ones. Keys come from
the run's seed, so peer IDs (and with them the election and every tie) are reproducible;
generating them is cached per (seed, index), since a sweep builds the same cluster often.
"""

from __future__ import annotations

import functools
import hashlib

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

from adapters.envelope import EnvelopeCache
from mesh.digest import TOPIC

__all__ = ["Identity", "identity", "shared_verifier"]


class Identity:
    """One node's key pair and peer ID, and its pubsub seqno counter."""

    def __init__(self, pair: KeyPair) -> None:
        self._pair = pair
        self._from = ID.from_pubkey(pair.public_key).to_bytes()
        self.peer_id = ID.from_pubkey(pair.public_key).to_base58()
        self._seqno = 0

    def seal(self, data: bytes) -> bytes:
        """``data`` as py-libp2p publishes it: the signed pubsub Message, serialized."""
        self._seqno += 1
        msg = rpc_pb2.Message(
            data=data,
            topicIDs=[TOPIC],
            from_id=self._from,
            seqno=self._seqno.to_bytes(8, "big"),
        )
        payload = PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString()
        # No key: an Ed25519 id embeds it, and our nodes leave it out (adapters.lean_records).
        msg.signature = self._pair.private_key.sign(payload)
        raw: bytes = msg.SerializeToString()
        return raw


@functools.lru_cache(maxsize=32768)
def _pair(seed: int, index: int) -> KeyPair:
    # 32 bytes of seed per node, derived from the run's seed: same seed, same peer IDs.
    return create_new_key_pair(hashlib.sha256(f"chorus-sim/{seed}/{index}".encode()).digest())


def identity(seed: int, index: int) -> Identity:
    """A fresh Identity (seqno 0) over the cached key pair for node ``index`` of ``seed``."""
    return Identity(_pair(seed, index))


def shared_verifier() -> EnvelopeCache:
    """The adapter's own verifier (``adapters.envelope.EnvelopeCache``), one for the whole
    run: an envelope's verdict does not depend on who checks it, so each distinct envelope
    is verified once for real and every node's checks are counted (``SimNode.verified``)
    rather than repeated; repeating them would only multiply the run's wall time."""
    return EnvelopeCache(size=1 << 20)
