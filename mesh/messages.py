"""What nodes say to each other about health, as plain values.

A node's own statements (its ``HealthDigest`` and its ``LeaveNotice``) are ordered by their
``Version``; an observer's ``SuspectNotice`` names the Version it suspects. A pulled
``ViewSnapshot`` carries them as their authors signed them (``SignedNotice``, the
``statement`` envelopes of a ``MemberEntry``; ``mesh.signed``). Their wire form is
``mesh.digest`` (gossip) and ``mesh.snapshot_codec`` (pull), their bounds ``mesh.wire_bounds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from mesh.certificate import MemberCertificate
from mesh.model import Status

__all__ = [
    "Gossip",
    "HealthDigest",
    "LeaveNotice",
    "MemberEntry",
    "MemberState",
    "SignedNotice",
    "SuspectNotice",
    "Version",
    "ViewSnapshot",
]


class MemberState(StrEnum):
    """What the cluster thinks of a member (SWIM with memberlist's ``left``)."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


class Version(NamedTuple):
    """The order of a node's own statements: compare as a tuple (life, refutations, count)."""

    start_time_ms: int
    incarnation: int
    seq: int


@dataclass(frozen=True, slots=True)
class HealthDigest:
    node_id: str
    start_time_ms: int
    incarnation: int = 0
    seq: int = 0
    status: Status = Status.HEALTHY
    score: float = 1.0
    components: Mapping[str, float] = field(default_factory=dict)
    sent_at_ms: int = 0
    version: str = ""
    http_addr: str = ""
    p2p_addrs: tuple[str, ...] = ()
    certificate: MemberCertificate | None = None
    # Its own local health (mesh/awareness.py): how much longer others wait on a suspicion.
    local_health: int = 0
    # The wire forms its node reads (mesh/wire_level.py); 0 from builds that do not say.
    wire_level: int = 0

    @property
    def key(self) -> Version:
        return Version(self.start_time_ms, self.incarnation, self.seq)


@dataclass(frozen=True, slots=True)
class SuspectNotice:
    observer_id: str
    suspect_id: str
    # The newest statement of the suspect the observer had accepted: the suspicion's basis.
    suspect_start_time_ms: int
    suspect_incarnation: int
    suspect_seq: int
    sent_at_ms: int = 0
    # The observer's own dial to the suspect's address was refused (rule 7): nothing listens
    # there. Counts towards death only from admitted observers (refusal_witnesses).
    refused: bool = False

    @property
    def basis(self) -> Version:
        return Version(self.suspect_start_time_ms, self.suspect_incarnation, self.suspect_seq)


@dataclass(frozen=True, slots=True)
class LeaveNotice:
    node_id: str
    start_time_ms: int
    incarnation: int
    seq: int
    sent_at_ms: int = 0

    @property
    def key(self) -> Version:
        return Version(self.start_time_ms, self.incarnation, self.seq)


Gossip = HealthDigest | SuspectNotice | LeaveNotice


@dataclass(frozen=True, slots=True)
class SignedNotice:
    """An observer's suspicion with the envelope its observer signed."""

    notice: SuspectNotice
    statement: bytes


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """One member of a snapshot: its own signed statements and others' signed suspicions.

    ``statement`` and ``leave_statement`` are the envelopes (``mesh.signed``) that carried
    ``digest`` and ``leave``; empty in an entry we build ourselves for a member whose
    envelope we do not hold, which ``encode_snapshot`` then leaves out."""

    digest: HealthDigest
    state: MemberState
    statement: bytes = b""
    leave: LeaveNotice | None = None
    leave_statement: bytes = b""
    suspicions: tuple[SignedNotice, ...] = ()

    @property
    def key(self) -> Version:
        """The triple the state is at: the leave's for a member that left."""
        return self.leave.key if self.leave is not None else self.digest.key

    @property
    def suspected_by(self) -> tuple[str, ...]:
        return tuple(signed.notice.observer_id for signed in self.suspicions)


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    responder_id: str
    sent_at_ms: int
    members: tuple[MemberEntry, ...]
    truncated: bool = False
    # The page's last member id when more follow: the cursor of the next page's request.
    next_after: str = ""
