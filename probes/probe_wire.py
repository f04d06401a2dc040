"""The PubSub probe's wire format: the probe, its answer, and their strict decoders.

Wire formats (UTF-8 JSON objects, no whitespace; version 1). A reader ignores fields it
does not know and drops a message whose known fields are missing or malformed.

Probe, published on ``CHORUS/health-test/v1`` (at most 2048 bytes)::

    {"v": 1,                           # schema version
     "nonce": "<32 lowercase hex>",    # fresh random id of this probe
     "origin": "<base58 peer id>",     # must equal the pubsub message's signed sender
     "sent_at": 1727692200.123,        # origin's Unix time; informational only (clock skew)
     "payload": "<base64>",            # random bytes, at most 512 (default 32)
     "payload_sha256": "<64 hex>",     # sha256 of the payload bytes
     "responders": ["<peer id>", ...]} # at most 16 peers asked to answer

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
import json
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
]

TOPIC = "CHORUS/health-test/v1"
ACK_PROTOCOL = "/chorus/health-probe-ack/1.0.0"
WIRE_VERSION = 1

MAX_PROBE_BYTES = 2048
MAX_ACK_BYTES = 1024
MAX_PAYLOAD_BYTES = 512
MAX_RESPONDERS = 16

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class WireError(ValueError):
    """A probe or answer is not valid version-1 JSON of the documented shape."""


@dataclass(frozen=True, slots=True)
class ProbeMessage:
    nonce: str
    origin: str
    sent_at: float
    payload: bytes
    payload_sha256: str
    responders: tuple[str, ...]

    def encode(self) -> bytes:
        return _dump(
            {
                "v": WIRE_VERSION,
                "nonce": self.nonce,
                "origin": self.origin,
                "sent_at": self.sent_at,
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payload_sha256": self.payload_sha256,
                "responders": list(self.responders),
            }
        )


@dataclass(frozen=True, slots=True)
class Ack:
    nonce: str
    payload_sha256: str

    def encode(self) -> bytes:
        return _dump(
            {"v": WIRE_VERSION, "nonce": self.nonce, "payload_sha256": self.payload_sha256}
        )


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _load(data: bytes, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise WireError(f"message is {len(data)} bytes, over the limit of {limit}")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported version {obj.get('v')!r}")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    # bool is an int: refuse it where a number is expected.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireError(f"field {name!r} is missing or not {kind}")
    return value


def _hex_field(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _field(obj, name, str)
    if not pattern.match(value):
        raise WireError(f"field {name!r} is not lowercase hex of the right length")
    return str(value)


def decode_probe(data: bytes) -> ProbeMessage:
    obj = _load(data, MAX_PROBE_BYTES)
    try:
        payload = base64.b64decode(_field(obj, "payload", str), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError("field 'payload' is not base64") from exc
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    responders = _field(obj, "responders", list)
    if len(responders) > MAX_RESPONDERS or not all(isinstance(r, str) for r in responders):
        raise WireError(f"field 'responders' is not a list of at most {MAX_RESPONDERS} ids")
    return ProbeMessage(
        nonce=_hex_field(obj, "nonce", _HEX32),
        origin=_field(obj, "origin", str),
        sent_at=float(_field(obj, "sent_at", (int, float))),
        payload=payload,
        payload_sha256=_hex_field(obj, "payload_sha256", _HEX64),
        responders=tuple(responders),
    )


def decode_ack(data: bytes) -> Ack:
    obj = _load(data, MAX_ACK_BYTES)
    return Ack(
        nonce=_hex_field(obj, "nonce", _HEX32),
        payload_sha256=_hex_field(obj, "payload_sha256", _HEX64),
    )
