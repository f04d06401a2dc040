"""Why an input was turned away: one reason enum, so that one counter covers all.

``mesh.digest`` and ``mesh.snapshot_codec`` decide the reasons that need nothing but the
bytes and the clock. REPLAYED (a statement not newer than the last accepted one),
NOT_MEMBER, NOT_ADMITTED, VIEW_FULL and JOIN_RATE need state, so the cluster view or the
gossip adapter decides them, and FLOODED (a signer over its message rate) is decided by the
gossip adapter; all are in this enum so that one counter covers all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RejectReason", "Rejection"]


class RejectReason(StrEnum):
    MALFORMED = "malformed"  # not a parseable message of ours
    OVERSIZED = "oversized"  # over the byte limit
    UNSUPPORTED_VERSION = "unsupported_version"  # schema_version is not ours
    SIGNER_MISMATCH = "signer_mismatch"  # the author is not the signer
    INVALID_FIELD = "invalid_field"  # a field out of shape or range
    FUTURE = "future"  # dated beyond our clock plus the allowed skew
    STALE = "stale"  # sent longer ago than max_message_age
    FORGED = "forged"  # a carried statement whose signature does not verify
    REPLAYED = "replayed"  # not newer than what the view already accepted
    FLOODED = "flooded"  # its signer is over its rate (the gossip adapter's limit)
    NOT_MEMBER = "not_member"  # a notice from a peer that is no alive member of our view
    NOT_ADMITTED = "not_admitted"  # the admission policy does not admit its author
    VIEW_FULL = "view_full"  # a new member while the view holds max_members
    JOIN_RATE = "join_rate"  # a new member beyond the rate at which the view takes them


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
