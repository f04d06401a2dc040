"""The text forms of admission: certificate files and authority keys.

Pure: it parses and formats, while the CLI (``adapters.authority_cli``) and the node do the
file I/O. The formats:

* certificate: JSON ``{"peer_id": "...", "expires_at": "<RFC 3339>", "signature": "<base64>"}``;
* authority public key: base64 of its 32 raw bytes;
* authority private key file: base64 of the 32-byte Ed25519 seed, one line.

Apart from the policy (``mesh.admission``) because the node's configuration reads authority
keys too (``mesh.config_parsers``), while the policy is built from a configuration: with both
in one module, configuration and admission imported each other.
"""

from __future__ import annotations

import base64
import binascii
import json

from mesh.certificate import KEY_BYTES, SIGNATURE_BYTES, MemberCertificate, private_key_from_seed
from mesh.errors import ConfigError
from mesh.peer_id import is_peer_id
from mesh.time_ms import format_time_ms, parse_time_ms

__all__ = [
    "format_certificate",
    "format_private_key",
    "format_public_key",
    "parse_certificate",
    "parse_private_key",
    "parse_public_key",
]

_CERT_FIELDS = ("peer_id", "expires_at", "signature")


def format_certificate(cert: MemberCertificate) -> str:
    """The certificate file's JSON text (ends with a newline)."""
    document = {
        "peer_id": cert.peer_id,
        "expires_at": format_time_ms(cert.expires_at_ms),
        "signature": base64.b64encode(cert.signature).decode("ascii"),
    }
    return json.dumps(document, indent=2) + "\n"


def parse_certificate(text: str) -> MemberCertificate:
    """Read a certificate file's text; ``ConfigError`` with one line on any problem.

    Unknown fields are refused: a later format that adds a restriction must not be read as
    this one, without it.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"certificate is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError("certificate must be a JSON object")
    missing = [name for name in _CERT_FIELDS if name not in document]
    if missing:
        raise ConfigError(f"certificate lacks {', '.join(missing)}")
    unknown = sorted(set(document) - set(_CERT_FIELDS))
    if unknown:
        raise ConfigError(f"certificate has unknown field(s) {', '.join(unknown)}")
    for name in _CERT_FIELDS:
        if not isinstance(document[name], str):
            raise ConfigError(f"certificate {name} must be a string")
    peer_id, expires_at, signature_text = (document[name] for name in _CERT_FIELDS)
    if not is_peer_id(peer_id):
        raise ConfigError(f"certificate peer_id {peer_id[:60]!r} is not a libp2p peer ID")
    try:
        expires_at_ms = parse_time_ms(expires_at)
    except ValueError as exc:
        raise ConfigError(f"certificate expires_at: {exc}") from None
    signature = _base64(signature_text)
    if signature is None or len(signature) != SIGNATURE_BYTES:
        raise ConfigError(f"certificate signature is not base64 of {SIGNATURE_BYTES} bytes")
    return MemberCertificate(peer_id, expires_at_ms, signature)


def format_public_key(public_key: bytes) -> str:
    """An authority public key as text: base64 of its 32 raw bytes."""
    if len(public_key) != KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {KEY_BYTES} bytes, got {len(public_key)}")
    return base64.b64encode(public_key).decode("ascii")


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an authority public key written as base64."""
    raw = _base64(text.strip())
    if raw is None or len(raw) != KEY_BYTES:
        got = "not base64" if raw is None else f"{len(raw)} bytes"
        raise ConfigError(f"authority key is not base64 of {KEY_BYTES} bytes ({got})")
    return raw


def format_private_key(seed: bytes) -> str:
    """The authority private key file's text: base64 of the 32-byte seed, one line."""
    private_key_from_seed(seed)  # refuse anything that is not a seed before writing it anywhere
    return base64.b64encode(seed).decode("ascii") + "\n"


def parse_private_key(text: str) -> bytes:
    """The 32-byte seed in an authority private key file's text.

    Errors never quote the text: it may be most of a secret.
    """
    raw = _base64(text.strip())
    if raw is None or len(raw) != KEY_BYTES:
        raise ConfigError(
            f"authority private key is not one line of base64 of a {KEY_BYTES}-byte Ed25519 seed"
        )
    return raw


def _base64(text: str) -> bytes | None:
    try:
        # validate=True: stray characters are an error, not silently skipped.
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
