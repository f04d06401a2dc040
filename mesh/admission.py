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

The policy only decides; certificates are issued in ``mesh.certificate``, and their files and
the authority keys are read and written by ``mesh.admission_formats``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mesh.admission_formats import parse_public_key
from mesh.certificate import KEY_BYTES, SIGNATURE_BYTES, MemberCertificate, certificate_payload
from mesh.cluster_config import CERTIFIED_MAX_MEMBERS
from mesh.config import NodeConfig

__all__ = [
    "CACHE_SIZE",
    "AdmissionPolicy",
    "AdmissionReason",
    "policy_from_config",
]

# Signature verdicts kept per policy. A verification costs some 50-100 us; the cache holds
# one verdict per member of the largest view a certified cluster keeps, with room for
# strangers' bad certificates besides, at about 200 bytes an entry (3.5 MiB when full).
CACHE_SIZE = CERTIFIED_MAX_MEMBERS + 1024


class AdmissionReason(StrEnum):
    ADMITTED = "admitted"
    NOT_LISTED = "not_listed"  # not on the allow-list, and no authority keys to ask
    NO_CERTIFICATE = "no_certificate"  # not on the allow-list and no certificate
    BAD_CERTIFICATE = "bad_certificate"  # malformed, or no trusted key signed it
    EXPIRED = "expired"  # at or past its expires_at
    WRONG_PEER = "wrong_peer"  # a certificate for some other peer


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
