"""What a health message may hold: the byte and field limits, and the shape checks.

Encoding applies the same checks as decoding (``mesh.digest``, ``mesh.snapshot_codec``), so
we never publish what peers would reject. The checks return why a message is out of shape
(a short text for the INVALID_FIELD rejection), or None; ``check_time`` dates a message
against our clock.
"""

from __future__ import annotations

import math
import re

from mesh.cluster_config import MAX_AWARENESS, ClusterConfig
from mesh.messages import Gossip, HealthDigest, LeaveNotice, SuspectNotice
from mesh.model import Status
from mesh.rejection import Rejection, RejectReason

__all__ = [
    "MAX_ADDR",
    "MAX_CERT_SIGNATURE",
    "MAX_COMPONENTS",
    "MAX_COMPONENT_NAME",
    "MAX_COUNTER",
    "MAX_ENVELOPE_BYTES",
    "MAX_GOSSIP_BYTES",
    "MAX_LOCAL_HEALTH",
    "MAX_P2P_ADDRS",
    "MAX_PEER_ID",
    "MAX_SNAPSHOT_BYTES",
    "MAX_SUSPICIONS",
    "MAX_TIME_MS",
    "MAX_VERSION",
    "check_gossip",
    "check_time",
    "is_peer_id_shape",
    "to_ms",
]

MAX_GOSSIP_BYTES = 4 * 1024  # one Gossip message; a typical digest is 200-500 bytes
# One carried statement: a Gossip plus libp2p's envelope (ids, seqno, topic, signature, key).
MAX_ENVELOPE_BYTES = MAX_GOSSIP_BYTES + 512
MAX_SNAPSHOT_BYTES = 256 * 1024  # one ViewSnapshot: some 500 typical members

# Field limits. The byte limits above are the real bound; these keep each field sane.
MAX_PEER_ID = 128  # base58 Ed25519 IDs are 52 characters, RSA ones 46
MAX_COMPONENTS = 32
MAX_COMPONENT_NAME = 64
MAX_VERSION = 64
MAX_ADDR = 256
MAX_P2P_ADDRS = 16
MAX_SUSPICIONS = 64  # signed suspect notices per member entry of a snapshot
# Counters (incarnation, seq) and Unix-millisecond times: 2**53 - 1 is what a JSON reader of
# /health/cluster can hold exactly, and far beyond any honest value (a seq bumped ten times a
# second lasts 28 million years). A refutation adds one to an incarnation: bounding what we
# accept bounds what we can be made to encode.
MAX_COUNTER = 2**53 - 1
MAX_TIME_MS = 2**53 - 1
MAX_CERT_SIGNATURE = 64
# A member's own local health: awareness_max is 8 by default, and at most MAX_AWARENESS.
MAX_LOCAL_HEALTH = MAX_AWARENESS - 1

# libp2p peer IDs are base58btc multihashes (or base32 CIDs); only the shape is checked here,
# since the signer comparison already ties an ID to a key.
_PEER_ID = re.compile(r"[A-Za-z0-9]+")
_COMPONENT = re.compile(r"[A-Za-z0-9_.:/-]+")


def to_ms(seconds: float) -> int:
    return math.floor(seconds * 1000.0)


def is_peer_id_shape(value: str) -> bool:
    return 0 < len(value) <= MAX_PEER_ID and _PEER_ID.fullmatch(value) is not None


def _is_text(value: str, limit: int) -> bool:
    # Printable and without whitespace. The only printable whitespace is the ASCII space
    # (every code point checked on 3.11 and 3.13), so one ``in`` replaces a scan of
    # ``isspace`` per character, which was a tenth of a simulated join's run time.
    return len(value) <= limit and value.isprintable() and " " not in value


def _is_fraction(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def _is_time(value: int) -> bool:
    return 0 < value <= MAX_TIME_MS


def _is_counter(value: int) -> bool:
    return 0 <= value <= MAX_COUNTER


def _check_digest(digest: HealthDigest) -> str | None:
    if not is_peer_id_shape(digest.node_id):
        return f"node_id {digest.node_id[:MAX_PEER_ID]!r}"
    if not isinstance(digest.status, Status):
        return f"status {digest.status!r}"
    if not _is_time(digest.start_time_ms):
        return f"start_time_ms {digest.start_time_ms}"
    if not _is_time(digest.sent_at_ms):
        return f"sent_at_ms {digest.sent_at_ms}"
    if not (_is_counter(digest.incarnation) and _is_counter(digest.seq)):
        return f"incarnation {digest.incarnation} or seq {digest.seq} out of range"
    cert = digest.certificate
    if cert is not None and (
        cert.peer_id != digest.node_id
        or not _is_time(cert.expires_at_ms)
        or len(cert.signature) != MAX_CERT_SIGNATURE
    ):
        return "certificate"
    if not 0 <= digest.local_health <= MAX_LOCAL_HEALTH:
        return f"local_health {digest.local_health}"
    if not _is_fraction(digest.score):
        return f"score {digest.score!r}"
    if len(digest.components) > MAX_COMPONENTS:
        return f"{len(digest.components)} components > {MAX_COMPONENTS}"
    for name, score in digest.components.items():
        if len(name) > MAX_COMPONENT_NAME or _COMPONENT.fullmatch(name) is None:
            return f"component name {name[:MAX_COMPONENT_NAME]!r}"
        if not _is_fraction(score):
            return f"component {name!r} score {score!r}"
    if not _is_text(digest.version, MAX_VERSION):
        return "version"
    if not _is_text(digest.http_addr, MAX_ADDR):
        return "http_addr"
    if len(digest.p2p_addrs) > MAX_P2P_ADDRS:
        return f"{len(digest.p2p_addrs)} p2p_addrs > {MAX_P2P_ADDRS}"
    for addr in digest.p2p_addrs:
        if not addr.startswith("/") or not _is_text(addr, MAX_ADDR):
            return f"p2p_addr {addr[:MAX_ADDR]!r}"
    return None


def check_gossip(message: Gossip) -> str | None:
    if isinstance(message, HealthDigest):
        return _check_digest(message)
    if isinstance(message, SuspectNotice):
        if not is_peer_id_shape(message.observer_id):
            return "observer_id"
        if not is_peer_id_shape(message.suspect_id):
            return "suspect_id"
        if message.observer_id == message.suspect_id:
            return "a node cannot suspect itself"
        if not (_is_time(message.suspect_start_time_ms) and _is_time(message.sent_at_ms)):
            return "times out of range"
        if not (_is_counter(message.suspect_incarnation) and _is_counter(message.suspect_seq)):
            return "incarnation or seq out of range"
        return None
    if isinstance(message, LeaveNotice):
        if not is_peer_id_shape(message.node_id):
            return "node_id"
        if not (_is_time(message.start_time_ms) and _is_time(message.sent_at_ms)):
            return "times out of range"
        if not (_is_counter(message.incarnation) and _is_counter(message.seq)):
            return "incarnation or seq out of range"
        return None
    return f"not a gossip message: {type(message).__name__}"


def check_time(
    message: Gossip, now: float, limits: ClusterConfig, *, check_age: bool
) -> Rejection | None:
    horizon = to_ms(now + limits.max_clock_skew)
    if message.sent_at_ms > horizon:
        return Rejection(RejectReason.FUTURE, f"sent_at_ms {message.sent_at_ms} > {horizon}")
    started = (
        message.suspect_start_time_ms
        if isinstance(message, SuspectNotice)
        else message.start_time_ms
    )
    if started > horizon:
        return Rejection(RejectReason.FUTURE, f"start_time_ms {started} > {horizon}")
    if check_age:
        oldest = to_ms(now - limits.max_message_age)
        if message.sent_at_ms < oldest:
            return Rejection(RejectReason.STALE, f"sent_at_ms {message.sent_at_ms} < {oldest}")
    return None
