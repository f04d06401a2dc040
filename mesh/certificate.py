"""Member certificates: an authority's signed word that a peer ID is a member until a time.

What an authority signs (``certificate_payload``, with its domain separation) and how a
certificate is issued from the authority's Ed25519 seed. Checking one against trusted keys
is the admission policy's job (``mesh.admission``); its file format is in
``mesh.admission_formats``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mesh.peer_id import MAX_PEER_ID, is_peer_id
from mesh.time_ms import MAX_MS, MIN_MS

__all__ = [
    "CERT_CONTEXT",
    "KEY_BYTES",
    "SIGNATURE_BYTES",
    "MemberCertificate",
    "authority_public_key",
    "certificate_payload",
    "private_key_from_seed",
    "sign_certificate",
]

# Domain separation: an authority key signs nothing but membership certificates, and a
# signature made for some other purpose (or a later format) can never pass as one.
CERT_CONTEXT = b"chorus-health/member-certificate/v1\x00"
KEY_BYTES = 32  # Ed25519 public keys and private seeds
SIGNATURE_BYTES = 64

_INT64 = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class MemberCertificate:
    """An authority's word that ``peer_id`` is a member until ``expires_at_ms``."""

    peer_id: str  # base58 libp2p peer ID it admits
    expires_at_ms: int  # Unix milliseconds; not valid at or after this
    signature: bytes  # Ed25519, over certificate_payload(peer_id, expires_at_ms)


def certificate_payload(peer_id: str, expires_at_ms: int) -> bytes:
    """The bytes an authority signs: context, peer ID (UTF-8), NUL, expiry (int64 BE).

    The expiry has a fixed width at the end, so the split is unambiguous whatever the peer
    ID holds. Raises ``UnicodeEncodeError`` or ``struct.error`` on values no certificate can
    carry (``check`` turns those into BAD_CERTIFICATE).
    """
    return CERT_CONTEXT + peer_id.encode("utf-8") + b"\x00" + _INT64.pack(expires_at_ms)


def sign_certificate(
    authority_private_key: bytes, peer_id: str, expires_at_ms: int
) -> MemberCertificate:
    """Issue a certificate; ``authority_private_key`` is the 32-byte raw Ed25519 seed.

    Raises ``ValueError`` for a seed of the wrong size, a string that is not a peer ID, or an
    expiry outside what RFC 3339 can write (years 0001-9999).
    """
    key = private_key_from_seed(authority_private_key)
    if not is_peer_id(peer_id):
        raise ValueError(f"{peer_id[:MAX_PEER_ID]!r} is not a libp2p peer ID")
    if isinstance(expires_at_ms, bool) or not isinstance(expires_at_ms, int):
        raise ValueError(f"expires_at_ms must be an integer, got {expires_at_ms!r}")
    if not MIN_MS <= expires_at_ms <= MAX_MS:
        raise ValueError(f"expires_at_ms {expires_at_ms} is outside years 0001-9999")
    signature = key.sign(certificate_payload(peer_id, expires_at_ms))
    return MemberCertificate(peer_id, expires_at_ms, signature)


def authority_public_key(authority_private_key: bytes) -> bytes:
    """The 32 raw bytes of the public key of a 32-byte Ed25519 seed."""
    return private_key_from_seed(authority_private_key).public_key().public_bytes_raw()


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != KEY_BYTES:
        raise ValueError(f"an Ed25519 private key is a {KEY_BYTES}-byte seed, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(bytes(seed))
