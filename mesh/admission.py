"""Admission: whose statements may enter the cluster view (issue 12).

An open cluster (the default) takes statements from any peer that can sign them. An
operator who wants a closed one gives each node an ``AdmissionPolicy``, made of two optional
parts:

* a static allow-list of peer IDs (``admit_peers``), for small clusters whose members are
  known in advance;
* trusted authority keys (``authority_keys``): Ed25519 public keys of a cluster authority
  that issues ``MemberCertificate``\\s, each admitting one peer ID until an expiry time.
  Several keys may be trusted at once, so an authority key can be rotated without a flag
  day: trust old and new, reissue, then drop the old one.

Rules of ``AdmissionPolicy.check``, in order (the first that applies wins):

1. no allow-list and no authority key: the policy is disabled, everyone is ADMITTED;
2. a peer on the allow-list is ADMITTED, certificate or not;
3. no authority key: nobody else can be admitted, NOT_LISTED;
4. no certificate: NO_CERTIFICATE;
5. the certificate names another peer: WRONG_PEER;
6. ``now`` at or after its expiry: EXPIRED;
7. signed by any trusted authority key: ADMITTED, otherwise BAD_CERTIFICATE.

Certificates arrive from hostile peers, so ``check`` never raises, and signature verdicts
are kept in a small per-policy LRU cache: a peer repeating its certificate with every
digest costs one dict lookup, and one minting identities without end cannot grow memory.

The module is pure: it parses and formats the file formats below, while the CLI
(``adapters.authority_cli``) and the node do the file I/O.

* certificate: JSON ``{"peer_id": "...", "expires_at": "<RFC 3339>", "signature": "<base64>"}``;
* authority public key: base64 of its 32 raw bytes;
* authority private key file: base64 of the 32-byte Ed25519 seed, one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mesh.errors import ConfigError

if TYPE_CHECKING:
    from mesh.config import NodeConfig

__all__ = [
    "CACHE_SIZE",
    "CERT_CONTEXT",
    "AdmissionPolicy",
    "AdmissionReason",
    "MemberCertificate",
    "authority_public_key",
    "certificate_payload",
    "format_certificate",
    "format_private_key",
    "format_public_key",
    "format_time_ms",
    "is_peer_id",
    "parse_certificate",
    "parse_private_key",
    "parse_public_key",
    "parse_time_ms",
    "policy_from_config",
    "sign_certificate",
]

# Domain separation: an authority key signs nothing but membership certificates, and a
# signature made for some other purpose (or a later format) can never pass as one.
CERT_CONTEXT = b"chorus-health/member-certificate/v1\x00"
KEY_BYTES = 32  # Ed25519 public keys and private seeds
SIGNATURE_BYTES = 64
# Signature verdicts kept per policy. A verification costs some 50-100 us; 1024 entries
# cover any cluster we run with room to spare, at a few hundred KiB at most.
CACHE_SIZE = 1024
MAX_PEER_ID = 128  # as mesh.digest: base58 Ed25519 IDs are 52 characters, RSA ones 46

_INT64 = struct.Struct(">q")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# What RFC 3339 timestamps can say: years 0001-9999.
_MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS


class AdmissionReason(StrEnum):
    ADMITTED = "admitted"
    NOT_LISTED = "not_listed"  # not on the allow-list, and no authority keys to ask
    NO_CERTIFICATE = "no_certificate"  # not on the allow-list and no certificate
    BAD_CERTIFICATE = "bad_certificate"  # malformed, or no trusted key signed it
    EXPIRED = "expired"  # at or past its expires_at
    WRONG_PEER = "wrong_peer"  # a certificate for some other peer


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
    key = _private_key(authority_private_key)
    if not is_peer_id(peer_id):
        raise ValueError(f"{peer_id[:MAX_PEER_ID]!r} is not a libp2p peer ID")
    if isinstance(expires_at_ms, bool) or not isinstance(expires_at_ms, int):
        raise ValueError(f"expires_at_ms must be an integer, got {expires_at_ms!r}")
    if not _MIN_MS <= expires_at_ms <= _MAX_MS:
        raise ValueError(f"expires_at_ms {expires_at_ms} is outside years 0001-9999")
    signature = key.sign(certificate_payload(peer_id, expires_at_ms))
    return MemberCertificate(peer_id, expires_at_ms, signature)


def authority_public_key(authority_private_key: bytes) -> bytes:
    """The 32 raw bytes of the public key of a 32-byte Ed25519 seed."""
    return _private_key(authority_private_key).public_key().public_bytes_raw()


def _private_key(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != KEY_BYTES:
        raise ValueError(f"an Ed25519 private key is a {KEY_BYTES}-byte seed, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(bytes(seed))


# --- the policy --------------------------------------------------------------------------


class _VerdictCache:
    """Signature verdicts by (peer_id, expires_at_ms, signature), least recently used out.

    Used from one trio thread only, so no lock.
    """

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: OrderedDict[tuple[str, int, bytes], bool] = OrderedDict()
        self._limit = limit

    def get(self, key: tuple[str, int, bytes]) -> bool | None:
        verdict = self._entries.get(key)
        if verdict is not None:
            self._entries.move_to_end(key)
        return verdict

    def put(self, key: tuple[str, int, bytes], verdict: bool) -> None:
        self._entries[key] = verdict
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """Who may enter the cluster view. Empty (the default): everyone, an open cluster."""

    allowed_peers: frozenset[str] = frozenset()  # static allow-list of peer IDs
    authority_keys: tuple[bytes, ...] = ()  # trusted 32-byte Ed25519 public keys
    # Derived in __post_init__, never passed in: dataclasses.replace() then builds a fresh
    # cache, so a policy without a rotated-out key cannot inherit that key's "valid" verdicts.
    _verifiers: tuple[Ed25519PublicKey, ...] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _cache: _VerdictCache = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Accept any iterables (a set, a list read from config) but keep the fields immutable
        # and hashable, as a frozen dataclass promises.
        object.__setattr__(self, "allowed_peers", frozenset(self.allowed_peers))
        keys = tuple(bytes(key) for key in self.authority_keys)
        for index, key in enumerate(keys):
            if len(key) != KEY_BYTES:
                raise ValueError(
                    f"authority key #{index + 1} has {len(key)} bytes, not {KEY_BYTES}"
                )
        object.__setattr__(self, "authority_keys", keys)
        verifiers = tuple(Ed25519PublicKey.from_public_bytes(key) for key in keys)
        object.__setattr__(self, "_verifiers", verifiers)
        object.__setattr__(self, "_cache", _VerdictCache(CACHE_SIZE))

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_peers or self.authority_keys)

    @property
    def cached_verdicts(self) -> int:
        """Entries in the signature cache (for tests and metrics); at most ``CACHE_SIZE``."""
        return len(self._cache)

    def check(
        self, peer_id: str, certificate: MemberCertificate | None, now: float
    ) -> AdmissionReason:
        """Decide on ``peer_id`` presenting ``certificate`` at ``now`` (Unix seconds).

        Never raises, whatever the certificate holds.
        """
        if not self.enabled:
            return AdmissionReason.ADMITTED
        # The allow-list is the operator's own word: it needs no certificate.
        if peer_id in self.allowed_peers:
            return AdmissionReason.ADMITTED
        # Without authority keys no certificate can be checked, so none can help.
        if not self.authority_keys:
            return AdmissionReason.NOT_LISTED
        if certificate is None:
            return AdmissionReason.NO_CERTIFICATE
        # A valid certificate of another peer must not admit its bearer.
        if certificate.peer_id != peer_id:
            return AdmissionReason.WRONG_PEER
        if _expired(certificate.expires_at_ms, now):
            return AdmissionReason.EXPIRED
        if self._signed_by_authority(certificate):
            return AdmissionReason.ADMITTED
        return AdmissionReason.BAD_CERTIFICATE

    def admits(self, peer_id: str, certificate: MemberCertificate | None, now: float) -> bool:
        return self.check(peer_id, certificate, now) is AdmissionReason.ADMITTED

    def _signed_by_authority(self, certificate: MemberCertificate) -> bool:
        signature = certificate.signature
        # Checked before the cache so that odd values never become (unhashable) keys.
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        if not isinstance(certificate.peer_id, str) or not isinstance(
            certificate.expires_at_ms, int
        ):
            return False
        key = (certificate.peer_id, certificate.expires_at_ms, signature)
        verdict = self._cache.get(key)
        if verdict is None:
            # Bad verdicts are cached too: a peer repeating a forged certificate must not
            # cost a verification per digest.
            verdict = _verify_signature(self._verifiers, certificate)
            self._cache.put(key, verdict)
        return verdict


def _expired(expires_at_ms: int, now: float) -> bool:
    # now * 1000 >= expires_at_ms, written as a comparison in seconds: a caller's
    # now = expires_at_ms / 1000 is then exactly "at expiry", with no float rounding to
    # move it a hair either way.
    try:
        return now >= expires_at_ms / 1000
    except (TypeError, OverflowError):
        return True  # not a time any certificate of ours can hold


def _verify_signature(verifiers: tuple[Ed25519PublicKey, ...], cert: MemberCertificate) -> bool:
    """True if any of ``verifiers`` signed ``cert``; malformed input is just False."""
    try:
        payload = certificate_payload(cert.peer_id, cert.expires_at_ms)
    except (UnicodeError, struct.error, TypeError, ValueError, OverflowError):
        return False
    for verifier in verifiers:
        try:
            verifier.verify(cert.signature, payload)
        except InvalidSignature:
            continue
        return True
    return False


def policy_from_config(cfg: NodeConfig) -> AdmissionPolicy:
    """The policy a node's configuration asks for; an empty one when nothing is set."""
    return AdmissionPolicy(
        allowed_peers=frozenset(cfg.admit_peers),
        authority_keys=tuple(parse_public_key(text) for text in cfg.authority_keys),
    )


# --- peer IDs ----------------------------------------------------------------------------

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_DIGIT = {char: value for value, char in enumerate(_BASE58)}
# libp2p peer IDs are multihashes: of the public key itself ("identity", Ed25519's
# 12D3KooW...) when it is short, else its SHA-256 (RSA's Qm...).
_MULTIHASH_IDENTITY = 0x00
_MULTIHASH_SHA2_256 = 0x12


def is_peer_id(text: str) -> bool:
    """True if ``text`` is a base58 libp2p peer ID: a well-formed identity or SHA-256 multihash.

    Stricter than mesh.digest's shape check on purpose: operators type and paste these, and a
    truncated or mistyped ID should fail at start-up, not silently admit nobody.
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


# --- file formats ------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # \d would otherwise take any Unicode digit
)
_CERT_FIELDS = ("peer_id", "expires_at", "signature")


def format_time_ms(unix_ms: int) -> str:
    """Unix milliseconds as RFC 3339 in UTC: ``2025-01-31T12:00:00Z`` or ``...00.250Z``."""
    moment = _EPOCH + unix_ms * _ONE_MS
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    millis = unix_ms % 1000
    return text + (f".{millis:03d}Z" if millis else "Z")


def parse_time_ms(text: str) -> int:
    """An RFC 3339 timestamp (any offset) as Unix milliseconds; ``ValueError`` if it is not one.

    Finer than a millisecond is refused rather than rounded: a certificate signs the exact
    millisecond, and rounding would turn a hand-edited file into a bad signature instead of
    a clear error.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an RFC 3339 time like 2025-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    if fraction[3:].strip("0"):
        raise ValueError(f"{text!r} is finer than a millisecond")
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid time: {exc}") from None
    millis = (moment - _EPOCH) // _ONE_MS + int(fraction[:3].ljust(3, "0"))
    if match.group(9):  # a numeric offset: local time = UTC + offset
        offset_hours, offset_minutes = int(match.group(10)), int(match.group(11))
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError(f"{text!r} has no valid UTC offset")
        offset_ms = (offset_hours * 60 + offset_minutes) * 60_000
        millis += -offset_ms if match.group(9) == "+" else offset_ms
    return millis


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
    _private_key(seed)  # refuse anything that is not a seed before writing it anywhere
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
