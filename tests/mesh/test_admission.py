from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mesh import admission
from mesh.admission import CACHE_SIZE, AdmissionPolicy, AdmissionReason, policy_from_config
from mesh.admission_formats import (
    format_certificate,
    format_private_key,
    format_public_key,
    parse_certificate,
    parse_private_key,
    parse_public_key,
)
from mesh.certificate import (
    CERT_CONTEXT,
    MemberCertificate,
    authority_public_key,
    certificate_payload,
    sign_certificate,
)
from mesh.cluster_config import CERTIFIED_MAX_MEMBERS
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.peer_id import is_peer_id
from mesh.time_ms import format_time_ms, parse_time_ms

R = AdmissionReason

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    digits = ""
    while number:
        number, digit = divmod(number, 58)
        digits = _BASE58[digit] + digits
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + digits


def _peer(n: int) -> str:
    """A well-formed Ed25519 peer ID (identity multihash of a protobuf public key)."""
    public = hashlib.sha256(n.to_bytes(4, "big")).digest()
    return _base58(b"\x00\x24" + b"\x08\x01\x12\x20" + public)


SEED_A = bytes(range(32))
SEED_B = bytes(range(100, 132))
SEED_ROGUE = bytes(32 * [7])
KEY_A = authority_public_key(SEED_A)
KEY_B = authority_public_key(SEED_B)
PEER = _peer(1)
OTHER = _peer(2)
NOW = 1_700_000_000.0
EXPIRES = 1_700_000_600_000  # ten minutes after NOW

SMALL_CACHE = 64  # what the cache tests fill: its rules do not depend on its size
OPEN = AdmissionPolicy()
LISTED = AdmissionPolicy(allowed_peers=frozenset({PEER}))
AUTHORITY = AdmissionPolicy(authority_keys=(KEY_A,))
BOTH = AdmissionPolicy(allowed_peers=frozenset({OTHER}), authority_keys=(KEY_A,))

GOOD = sign_certificate(SEED_A, PEER, EXPIRES)
FOR_OTHER = sign_certificate(SEED_A, OTHER, EXPIRES)
ROGUE = sign_certificate(SEED_ROGUE, PEER, EXPIRES)
EXPIRED_LONG_AGO = sign_certificate(SEED_A, PEER, 1_000)


def _with(cert: MemberCertificate, **changes: object) -> MemberCertificate:
    return dataclasses.replace(cert, **changes)  # type: ignore[arg-type]


def _flip(signature: bytes, index: int) -> bytes:
    return signature[:index] + bytes([signature[index] ^ 1]) + signature[index + 1 :]


@pytest.mark.parametrize(
    ("policy", "peer", "cert", "now", "expected"),
    [
        pytest.param(OPEN, PEER, None, NOW, R.ADMITTED, id="open-no-cert"),
        pytest.param(OPEN, PEER, ROGUE, NOW, R.ADMITTED, id="open-ignores-cert"),
        pytest.param(LISTED, PEER, None, NOW, R.ADMITTED, id="listed-no-cert"),
        pytest.param(LISTED, PEER, ROGUE, NOW, R.ADMITTED, id="listed-bad-cert"),
        pytest.param(LISTED, OTHER, None, NOW, R.NOT_LISTED, id="unlisted-no-keys"),
        # A certificate cannot help where no authority is trusted.
        pytest.param(LISTED, OTHER, FOR_OTHER, NOW, R.NOT_LISTED, id="unlisted-cert-no-keys"),
        pytest.param(BOTH, OTHER, None, NOW, R.ADMITTED, id="listed-with-keys"),
        pytest.param(AUTHORITY, PEER, None, NOW, R.NO_CERTIFICATE, id="no-cert"),
        pytest.param(AUTHORITY, PEER, GOOD, NOW, R.ADMITTED, id="valid"),
        pytest.param(BOTH, PEER, GOOD, NOW, R.ADMITTED, id="valid-unlisted"),
        pytest.param(AUTHORITY, PEER, GOOD, EXPIRES / 1000, R.EXPIRED, id="expires-exactly-now"),
        pytest.param(AUTHORITY, PEER, GOOD, (EXPIRES - 1) / 1000, R.ADMITTED, id="1ms-before"),
        pytest.param(AUTHORITY, PEER, GOOD, (EXPIRES + 1) / 1000, R.EXPIRED, id="1ms-after"),
        pytest.param(AUTHORITY, PEER, EXPIRED_LONG_AGO, NOW, R.EXPIRED, id="long-expired"),
        pytest.param(AUTHORITY, PEER, FOR_OTHER, NOW, R.WRONG_PEER, id="wrong-peer"),
        pytest.param(AUTHORITY, OTHER, GOOD, NOW, R.WRONG_PEER, id="stolen-cert"),
        pytest.param(AUTHORITY, PEER, ROGUE, NOW, R.BAD_CERTIFICATE, id="untrusted-signer"),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, signature=GOOD.signature[:63]),
            NOW,
            R.BAD_CERTIFICATE,
            id="63-byte-signature",
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, signature=GOOD.signature + b"\x00"),
            NOW,
            R.BAD_CERTIFICATE,
            id="65-byte-signature",
        ),
        pytest.param(
            AUTHORITY, PEER, _with(GOOD, signature=b""), NOW, R.BAD_CERTIFICATE, id="no-signature"
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, signature=_flip(GOOD.signature, 10)),
            NOW,
            R.BAD_CERTIFICATE,
            id="flipped-signature-bit",
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, expires_at_ms=EXPIRES + 1),
            NOW,
            R.BAD_CERTIFICATE,
            id="tampered-expiry",
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(FOR_OTHER, peer_id=PEER),
            NOW,
            R.BAD_CERTIFICATE,
            id="tampered-peer",
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, expires_at_ms=2**63),
            NOW,
            R.BAD_CERTIFICATE,
            id="expiry-beyond-int64",
        ),
        pytest.param(
            AUTHORITY,
            PEER,
            _with(GOOD, expires_at_ms=10**400),
            NOW,
            R.EXPIRED,
            id="expiry-beyond-float",
        ),
        pytest.param(
            AUTHORITY,
            "\ud800",
            _with(GOOD, peer_id="\ud800"),
            NOW,
            R.BAD_CERTIFICATE,
            id="peer-not-utf8",
        ),
    ],
)
def test_check(
    policy: AdmissionPolicy,
    peer: str,
    cert: MemberCertificate | None,
    now: float,
    expected: AdmissionReason,
) -> None:
    assert policy.check(peer, cert, now) is expected
    assert policy.admits(peer, cert, now) is (expected is R.ADMITTED)


@pytest.mark.parametrize(
    ("policy", "enabled"),
    [(OPEN, False), (LISTED, True), (AUTHORITY, True), (BOTH, True)],
)
def test_enabled(policy: AdmissionPolicy, enabled: bool) -> None:
    assert policy.enabled is enabled


def test_rotation_any_trusted_key_admits_and_a_removed_key_no_longer_does() -> None:
    by_a, by_b = GOOD, sign_certificate(SEED_B, PEER, EXPIRES)
    rotating = AdmissionPolicy(authority_keys=(KEY_A, KEY_B))
    assert rotating.check(PEER, by_a, NOW) is R.ADMITTED
    assert rotating.check(PEER, by_b, NOW) is R.ADMITTED
    # replace() must start a new cache: the old one holds "valid" for by_a.
    rotated = dataclasses.replace(rotating, authority_keys=(KEY_B,))
    assert rotated.check(PEER, by_a, NOW) is R.BAD_CERTIFICATE
    assert rotated.check(PEER, by_b, NOW) is R.ADMITTED
    assert rotating.check(PEER, by_a, NOW) is R.ADMITTED


def test_policy_is_frozen_hashable_and_compares_by_its_lists() -> None:
    first = AdmissionPolicy(frozenset({PEER}), (KEY_A,))
    first.check(PEER, GOOD, NOW)
    second = AdmissionPolicy(allowed_peers={PEER}, authority_keys=[KEY_A])  # type: ignore[arg-type]
    assert first == second and hash(first) == hash(second)
    assert isinstance(second.allowed_peers, frozenset)
    assert isinstance(second.authority_keys, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.allowed_peers = frozenset()  # type: ignore[misc]
    assert "_cache" not in repr(first)


def test_policy_refuses_a_key_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="#2 has 31 bytes"):
        AdmissionPolicy(authority_keys=(KEY_A, KEY_B[:31]))


def test_verdicts_are_cached_least_recently_used_first_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[MemberCertificate] = []
    verify = admission._verify_signature

    def counting(verifiers: tuple[object, ...], cert: MemberCertificate) -> bool:
        calls.append(cert)
        return verify(verifiers, cert)  # type: ignore[arg-type]

    monkeypatch.setattr(admission, "_verify_signature", counting)
    monkeypatch.setattr(admission, "CACHE_SIZE", SMALL_CACHE)  # the rule, not the size
    policy = AdmissionPolicy(authority_keys=(KEY_A,))
    first = GOOD
    for _ in range(3):
        assert policy.check(PEER, first, NOW) is R.ADMITTED
    assert calls == [first]  # one verification, then lookups
    for _ in range(2):  # forged ones are remembered as such
        assert policy.check(PEER, ROGUE, NOW) is R.BAD_CERTIFICATE
    assert calls == [first, ROGUE]
    # Fill the cache to the brim, touching `first` on the way so it is the newest ...
    others = [sign_certificate(SEED_A, PEER, EXPIRES + n) for n in range(1, SMALL_CACHE - 1)]
    for cert in others:
        policy.check(PEER, cert, NOW)
    policy.check(PEER, first, NOW)
    assert policy.cached_verdicts == SMALL_CACHE
    # ... so one more evicts the oldest (ROGUE), not `first`.
    policy.check(PEER, sign_certificate(SEED_A, PEER, EXPIRES + SMALL_CACHE), NOW)
    calls.clear()
    policy.check(PEER, first, NOW)
    policy.check(PEER, ROGUE, NOW)
    assert calls == [ROGUE]


def test_cache_stays_bounded_under_a_flood_of_identities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission, "CACHE_SIZE", SMALL_CACHE)
    policy = AdmissionPolicy(authority_keys=(KEY_A,))
    for n in range(3 * SMALL_CACHE):
        peer = _peer(1000 + n)
        policy.check(peer, sign_certificate(SEED_ROGUE, peer, EXPIRES), NOW)
        assert policy.cached_verdicts <= SMALL_CACHE
    assert policy.cached_verdicts == SMALL_CACHE


def test_the_cache_holds_a_verdict_for_every_member_of_the_largest_view() -> None:
    # A certified view holds up to CERTIFIED_MAX_MEMBERS (attacker review of 6793b77: a
    # cache of 1,024 made every pulled entry of a larger view a fresh signature check).
    assert CACHE_SIZE > CERTIFIED_MAX_MEMBERS


def test_payload_layout() -> None:
    payload = certificate_payload(PEER, EXPIRES)
    assert payload == CERT_CONTEXT + PEER.encode() + b"\x00" + struct.pack(">q", EXPIRES)
    assert certificate_payload(PEER, -1).endswith(b"\xff" * 8)


def test_signature_is_plain_ed25519_over_the_payload() -> None:
    private = Ed25519PrivateKey.from_private_bytes(SEED_A)
    assert KEY_A == private.public_key().public_bytes_raw()
    assert len(KEY_A) == 32 and len(GOOD.signature) == 64
    private.public_key().verify(GOOD.signature, certificate_payload(PEER, EXPIRES))


@pytest.mark.parametrize(
    ("seed", "peer", "expires", "message"),
    [
        (SEED_A[:31], PEER, EXPIRES, "32-byte seed, got 31"),
        (SEED_A, "not-a-peer", EXPIRES, "is not a libp2p peer ID"),
        (SEED_A, PEER, 2**62, "outside years 0001-9999"),
    ],
)
def test_sign_refuses_bad_input(seed: bytes, peer: str, expires: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign_certificate(seed, peer, expires)


def test_real_libp2p_peer_ids_have_the_right_shape() -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair as ed25519
    from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1
    from libp2p.peer.id import ID

    for make in (ed25519, secp256k1):
        assert is_peer_id(ID.from_pubkey(make().public_key).to_base58())
    assert is_peer_id(ID(b"\x12\x20" + bytes(32)).to_base58())  # an RSA-style Qm... ID


@pytest.mark.parametrize(
    "text",
    [
        "",
        PEER[:-1],  # truncated
        PEER + "1",  # one character too many
        PEER.replace(PEER[10], "0"),  # 0 is not base58
        PEER[:10] + "l" + PEER[11:],  # nor is l
        _base58(b"\x12\x20" + bytes(31)),  # SHA-256 of the wrong length
        _base58(b"\x13\x20" + bytes(32)),  # not a peer ID's hash
        "1" * 129,
        "12D3KooWnope",  # an identity multihash, but of no public key
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",  # base32 CID
    ],
)
def test_not_peer_ids(text: str) -> None:
    assert not is_peer_id(text)


# --- file formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (EXPIRES, "2023-11-14T22:23:20Z"),
        (EXPIRES + 7, "2023-11-14T22:23:20.007Z"),
        (EXPIRES + 250, "2023-11-14T22:23:20.250Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ],
)
def test_time_round_trip(millis: int, text: str) -> None:
    assert format_time_ms(millis) == text
    assert parse_time_ms(text) == millis


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2023-11-15T00:23:20+02:00", EXPIRES),
        ("2023-11-14T21:53:20-00:30", EXPIRES),
        ("2023-11-14t22:23:20.25z", EXPIRES + 250),
        ("2023-11-14T22:23:20.250000000Z", EXPIRES + 250),
    ],
)
def test_time_accepts_rfc3339_variants(text: str, millis: int) -> None:
    assert parse_time_ms(text) == millis


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:23:20",  # no offset
        "2023-11-14 22:23:20Z",
        "2023-13-14T22:23:20Z",
        "2023-11-14T22:23:60Z",
        "2023-11-14T22:23:20.0001Z",  # finer than a millisecond
        "2023-11-14T22:23:20+24:00",
        "1700000000",
        "\uff12\uff10\uff12\uff13-11-14T22:23:20Z",  # fullwidth digits
    ],
)
def test_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_ms(text)


def test_certificate_round_trip() -> None:
    cert = sign_certificate(SEED_A, PEER, EXPIRES + 123)
    text = format_certificate(cert)
    assert json.loads(text) == {
        "peer_id": PEER,
        "expires_at": "2023-11-14T22:23:20.123Z",
        "signature": base64.b64encode(cert.signature).decode(),
    }
    assert parse_certificate(text) == cert
    assert AUTHORITY.check(PEER, parse_certificate(text), NOW) is R.ADMITTED


def _doc(**changes: object) -> str:
    document: dict[str, object] = json.loads(format_certificate(GOOD))
    for name, value in changes.items():
        if value is None:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (_doc(signature=None), "lacks signature"),
        (_doc(peer_id=None, expires_at=None), "lacks peer_id, expires_at"),
        (_doc(scope="all"), "unknown field(s) scope"),
        (_doc(expires_at=1700000600), "expires_at must be a string"),
        (_doc(peer_id="12D3KooWnope"), "peer_id '12D3KooWnope' is not a libp2p peer ID"),
        (_doc(expires_at="tomorrow"), "is not an RFC 3339 time"),
        (_doc(expires_at="2023-02-30T00:00:00Z"), "is not a valid time"),
        (_doc(signature="not base64!"), "signature is not base64 of 64 bytes"),
        (_doc(signature=base64.b64encode(bytes(63)).decode()), "not base64 of 64 bytes"),
        (_doc(signature=base64.b64encode(bytes(65)).decode()), "not base64 of 64 bytes"),
    ],
)
def test_parse_certificate_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_certificate(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_public_key_text() -> None:
    text = format_public_key(KEY_A)
    assert len(text) == 44 and base64.b64decode(text) == KEY_A
    assert parse_public_key(f"  {text}\n") == KEY_A


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("", "0 bytes"),
        ("abc", "not base64"),
        (base64.b64encode(bytes(31)).decode(), "31 bytes"),
        (base64.b64encode(bytes(33)).decode(), "33 bytes"),
        ("é" * 44, "not base64"),
    ],
)
def test_public_key_errors(text: str, got: str) -> None:
    with pytest.raises(ConfigError, match=f"not base64 of 32 bytes \\({got}\\)"):
        parse_public_key(text)


def test_private_key_text() -> None:
    text = format_private_key(SEED_A)
    assert text.endswith("\n") and text.count("\n") == 1
    assert parse_private_key(text) == SEED_A
    with pytest.raises(ValueError):
        format_private_key(SEED_A[:16])


@pytest.mark.parametrize(
    "text",
    [
        "",
        base64.b64encode(bytes(range(31))).decode(),
        base64.b64encode(bytes(range(64))).decode(),  # a 64-byte libsodium-style key
        format_private_key(SEED_A)[:20] + "\n" + format_private_key(SEED_A)[20:],  # two lines
    ],
)
def test_private_key_errors_do_not_quote_the_text(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_private_key(text)
    assert "one line of base64 of a 32-byte Ed25519 seed" in str(info.value)
    assert not (text.strip() and text.strip()[:8] in str(info.value))


def test_policy_from_config() -> None:
    assert not policy_from_config(NodeConfig()).enabled
    config = NodeConfig(
        admit_peers=(OTHER,),
        authority_keys=(format_public_key(KEY_A), format_public_key(KEY_B)),
    )
    policy = policy_from_config(config)
    assert policy == AdmissionPolicy(frozenset({OTHER}), (KEY_A, KEY_B))
    assert policy.check(PEER, GOOD, NOW) is R.ADMITTED
    assert policy.check(OTHER, None, NOW) is R.ADMITTED
