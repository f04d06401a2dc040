"""The PubSub probe's wire format: the probe, its answer, and their strict decoders.

Wire formats (UTF-8 JSON objects, no whitespace). A reader ignores fields it does not know
and drops a message whose known fields are missing or malformed.

Probe, published on ``CHORUS/health-test/v1`` (at most 2048 bytes), version 2, what we
send::

    {"v": 2,                           # schema version
     "n": "<32 lowercase hex>",        # nonce: fresh random id of this probe
     "t": 1727692200.123,              # origin's Unix time; informational only (clock skew)
     "p": "<base64>",                  # payload: random bytes, at most 512 (default 32)
     "r": ["<16 hex>", ...]}           # at most 16 peers asked to answer, as responder tags

The origin is the pubsub message's signed sender and the payload's hash is the reader's to
compute, so neither is sent; a responder finds itself by its tag, the first 8 bytes of the
SHA-256 of its base58 peer id, in hex (``responder_tag``). Version 1 spelled all of them
out and was two and a half times longer (464 bytes against 180 with three responders);
every node forwards every probe to its mesh peers, so the topic was a quarter of an idle
node's bytes (devnet/cost_breakdown.py, 2026-12-04). A tag another peer shares only makes
that peer answer too: the origin takes answers from the peers it named, by their stream's
authenticated id. Version 1 is still read::

    {"v": 1, "nonce": "<32 hex>", "origin": "<base58 peer id>", "sent_at": 1727692200.123,
     "payload": "<base64>", "payload_sha256": "<64 hex>", "responders": ["<peer id>", ...]}

where ``origin`` must equal the signed sender and ``payload_sha256`` the payload's hash.

Answer, on a stream the responder opens to the origin with protocol
``/chorus/health-probe-ack/1.0.0``; the responder writes one object then closes its side,
so the message ends at EOF (at most 1024 bytes)::

    {"v": 1,
     "nonce": "<32 hex>",              # the probe's nonce
     "payload_sha256": "<64 hex>"}     # sha256 of the payload AS THE RESPONDER DECODED IT

The origin takes the responder's identity from the stream (authenticated by Noise), never
from the message, and accepts one answer per named peer. An answer whose hash differs from
the payload's is "corrupted": messages are signed, so that means a faulty or lying peer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACK_PROTOCOL",
    "MAX_ACK_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_PROBE_BYTES",
    "MAX_RESPONDERS",
    "TOPIC",
    "WIRE_VERSION",
    "Ack",
    "ProbeMessage",
    "WireError",
    "decode_ack",
    "decode_probe",
    "responder_tag",
]

TOPIC = "CHORUS/health-test/v1"
ACK_PROTOCOL = "/chorus/health-probe-ack/1.0.0"
WIRE_VERSION = 2  # of the probe; answers are version 1
ACK_VERSION = 1

MAX_PROBE_BYTES = 2048
MAX_ACK_BYTES = 1024
MAX_PAYLOAD_BYTES = 512
MAX_RESPONDERS = 16

_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class WireError(ValueError):
    """A probe or answer is not valid JSON of the documented shape and version."""


def responder_tag(peer_id: str) -> str:
    """How a version-2 probe names ``peer_id``: 16 hex characters."""
    return hashlib.sha256(peer_id.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ProbeMessage:
    """A probe. ``responders`` holds peer ids where we build one, and whatever the wire
    had where we read one: tags (version 2) or peer ids (version 1); ``names`` reads both."""

    nonce: str
    origin: str
    sent_at: float
    payload: bytes
    payload_sha256: str
    responders: tuple[str, ...]

    def names(self, peer_id: str) -> bool:
        return peer_id in self.responders or responder_tag(peer_id) in self.responders

    def encode(self, version: int = WIRE_VERSION) -> bytes:
        """Version 2, or 1 for peers of an older build (mesh/wire_level.py); version 1
        needs ``responders`` as peer ids, as a probe we build has them."""
        if version == 1:
            return _dump(
                {
                    "v": 1,
                    "nonce": self.nonce,
                    "origin": self.origin,
                    "sent_at": self.sent_at,
                    "payload": base64.b64encode(self.payload).decode("ascii"),
                    "payload_sha256": self.payload_sha256,
                    "responders": list(self.responders),
                }
            )
        return _dump(
            {
                "v": WIRE_VERSION,
                "n": self.nonce,
                "t": round(self.sent_at, 3),
                "p": base64.b64encode(self.payload).decode("ascii"),
                "r": [r if _HEX16.fullmatch(r) else responder_tag(r) for r in self.responders],
            }
        )


@dataclass(frozen=True, slots=True)
class Ack:
    nonce: str
    payload_sha256: str

    def encode(self) -> bytes:
        return _dump({"v": ACK_VERSION, "nonce": self.nonce, "payload_sha256": self.payload_sha256})


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _load(data: bytes, limit: int, versions: tuple[int, ...]) -> dict[str, Any]:
    if len(data) > limit:
        raise WireError(f"message is {len(data)} bytes, over the limit of {limit}")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    version = obj.get("v")
    if isinstance(version, bool) or version not in versions:
        raise WireError(f"unsupported version {version!r}")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    # bool is an int: refuse it where a number is expected.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError(f"field {name!r} is missing or not {kind}")
    return value


def _hex_field(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _field(obj, name, str)
    if not pattern.fullmatch(value):
        raise WireError(f"field {name!r} is not lowercase hex of the right length")
    return str(value)


def _time_field(obj: dict[str, Any], name: str) -> float:
    # JSON numbers are unbounded: a 400-digit integer overflows float(), and json reads
    # NaN and Infinity.
    try:
        value = float(_field(obj, name, (int, float)))
    except OverflowError as exc:
        raise WireError(f"field {name!r} is out of range") from exc
    if not math.isfinite(value):
        raise WireError(f"field {name!r} is not a finite number")
    return value


def decode_probe(data: bytes, signer: str) -> ProbeMessage:
    """The probe in ``data``, published by ``signer`` (the pubsub message's verified
    sender); WireError for anything else."""
    obj = _load(data, MAX_PROBE_BYTES, (1, 2))
    v1 = obj["v"] == 1
    names = ("nonce", "sent_at", "payload", "responders") if v1 else ("n", "t", "p", "r")
    nonce_field, time_field, payload_field, responders_field = names
    try:
        payload = base64.b64decode(_field(obj, payload_field, str), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"field {payload_field!r} is not base64") from exc
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    responders = _field(obj, responders_field, list)
    if len(responders) > MAX_RESPONDERS or not all(isinstance(r, str) for r in responders):
        raise WireError(f"field {responders_field!r} is not a list of at most {MAX_RESPONDERS}")
    if not v1 and not all(_HEX16.fullmatch(r) for r in responders):
        raise WireError("field 'r' holds something other than responder tags")
    return ProbeMessage(
        nonce=_hex_field(obj, nonce_field, _HEX32),
        origin=_field(obj, "origin", str) if v1 else signer,
        sent_at=_time_field(obj, time_field),
        payload=payload,
        payload_sha256=(
            _hex_field(obj, "payload_sha256", _HEX64) if v1 else hashlib.sha256(payload).hexdigest()
        ),
        responders=tuple(responders),
    )


def decode_ack(data: bytes) -> Ack:
    obj = _load(data, MAX_ACK_BYTES, (ACK_VERSION,))
    return Ack(
        nonce=_hex_field(obj, "nonce", _HEX32),
        payload_sha256=_hex_field(obj, "payload_sha256", _HEX64),
    )
