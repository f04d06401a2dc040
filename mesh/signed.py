"""Signed statements: what a snapshot may carry instead of a responder's word.

Every health statement travels on the topic as a GossipSub message signed by its author
(libp2p's strict signing). A pulled snapshot carries those messages unchanged, so a node
that was not there when they were published can still check who said what: a responder can
pass statements on, but neither forge nor advance them (issue 12, "pulled snapshots are
trusted hearsay").

The core treats an envelope as opaque bytes and asks an ``EnvelopeVerifier`` to open it;
``adapters.envelope`` verifies py-libp2p's pubsub ``Message`` (the libp2p pubsub spec's
signature over ``"libp2p-pubsub:" + message``), and ``FakeEnvelopes`` below stands in for it
in unit tests of the pure core, where there are no keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Envelope", "EnvelopeVerifier", "FakeEnvelopes"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """An opened envelope: ``data`` (one encoded Gossip) as ``signer`` signed it."""

    signer: str
    data: bytes
    raw: bytes


# The envelope, verified and opened; None when it is malformed, unsigned, signed by a key
# that is not the claimed author's, or not a message of our topic. Must not raise.
EnvelopeVerifier = Callable[[bytes], Envelope | None]


class FakeEnvelopes:
    """Unsigned stand-in envelopes for unit tests of the pure core: ``seal`` writes the
    signer in clear, ``open`` reads it back. ``forged`` marks envelopes ``open`` refuses, so
    tests can play a bad signature."""

    _MAGIC = b"FAKE-ENVELOPE\x00"

    def __init__(self) -> None:
        self.forged: set[bytes] = set()

    def seal(self, signer: str, data: bytes) -> bytes:
        name = signer.encode()
        return self._MAGIC + len(name).to_bytes(2, "big") + name + data

    def forge(self, signer: str, data: bytes) -> bytes:
        raw = self.seal(signer, data) + b"\x00"
        self.forged.add(raw)
        return raw

    def open(self, raw: bytes) -> Envelope | None:
        if raw in self.forged or not raw.startswith(self._MAGIC):
            return None
        body = raw[len(self._MAGIC) :]
        if len(body) < 2:
            return None
        size = int.from_bytes(body[:2], "big")
        name, data = body[2 : 2 + size], body[2 + size :]
        if len(name) != size:
            return None
        try:
            signer = name.decode()
        except UnicodeDecodeError:
            return None
        return Envelope(signer, data, raw)
