"""libp2p peer IDs as operators type them: the strict check of a base58 peer ID.

Its own module because two concerns need it: certificates (``mesh.certificate``,
``mesh.admission_formats``) and the parsing of the node's configuration (``admit_peers``,
``mesh.config_parsers``). The configuration must not import the admission policy, which is
built from it (``mesh.admission.policy_from_config``): that import both ways was a cycle.
"""

from __future__ import annotations

__all__ = ["MAX_PEER_ID", "is_peer_id"]

MAX_PEER_ID = 128  # as mesh.wire_bounds: base58 Ed25519 IDs are 52 characters, RSA ones 46

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_DIGIT = {char: value for value, char in enumerate(_BASE58)}
# libp2p peer IDs are multihashes: of the public key itself ("identity", Ed25519's
# 12D3KooW...) when it is short, else its SHA-256 (RSA's Qm...).
_MULTIHASH_IDENTITY = 0x00
_MULTIHASH_SHA2_256 = 0x12


def is_peer_id(text: str) -> bool:
    """True if ``text`` is a base58 libp2p peer ID: a well-formed identity or SHA-256 multihash.

    Stricter than the shape check of mesh.wire_bounds on purpose: operators type and paste
    these, and a truncated or mistyped ID should fail at start-up, not silently admit nobody.
    """
    if not isinstance(text, str) or not 0 < len(text) <= MAX_PEER_ID:
        return False
    raw = _base58_decode(text)
    if raw is None or len(raw) < 2:
        return False
    # Codes and lengths here are all below 0x80, so each varint is a single byte.
    code, length, digest = raw[0], raw[1], raw[2:]
    if code == _MULTIHASH_SHA2_256:
        return length == len(digest) == 32
    if code == _MULTIHASH_IDENTITY:
        # The digest is the key itself, a libp2p PublicKey protobuf: field 1 the key type
        # (0-3: RSA, Ed25519, secp256k1, ECDSA), field 2 the key bytes, nothing after.
        return (
            length == len(digest) >= 4
            and digest[0] == 0x08
            and digest[1] <= 3
            and digest[2] == 0x12
            and digest[3] == len(digest) - 4
        )
    return False


def _base58_decode(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = _BASE58_DIGIT.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))  # each leading "1" is a zero byte
    return b"\x00" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
