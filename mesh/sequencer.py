"""This node's own statements, numbered: the digests, the leave and the suspicions it makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mesh.certificate import MemberCertificate
from mesh.messages import HealthDigest, LeaveNotice, SuspectNotice, Version
from mesh.model import Status
from mesh.wire_bounds import MAX_COUNTER, is_peer_id_shape, to_ms
from mesh.wire_level import WIRE_LEVEL

__all__ = ["Sequencer"]


class Sequencer:
    """Numbers this node's own statements (pure; the publisher owns one).

    Every digest and the leave notice take the next ``seq`` of this life, so peers can order
    them and drop replays. ``refute`` raises the incarnation when the cluster view asks us
    to answer a suspicion (SWIM 4.2); the next digest carries it and must be published at
    once, without waiting for ``min_publish_interval``.
    """

    def __init__(self, node_id: str, start_time_ms: int, *, incarnation: int = 0) -> None:
        if not is_peer_id_shape(node_id):
            raise ValueError(f"invalid node id {node_id!r}")
        if start_time_ms <= 0:
            raise ValueError(f"start_time_ms must be positive, got {start_time_ms}")
        self.node_id = node_id
        self.start_time_ms = start_time_ms
        self.incarnation = incarnation
        self.seq = 0

    @property
    def key(self) -> Version:
        """The triple of the last statement made (seq 0: none yet)."""
        return Version(self.start_time_ms, self.incarnation, self.seq)

    def refute(self, incarnation: int) -> None:
        # Capped: our digests must stay encodable whatever a peer made the view ask for.
        self.incarnation = min(MAX_COUNTER, max(self.incarnation, incarnation))

    def digest(
        self,
        now: float,
        *,
        status: Status,
        score: float,
        components: Mapping[str, float] | None = None,
        version: str = "",
        http_addr: str = "",
        p2p_addrs: Iterable[str] = (),
        certificate: MemberCertificate | None = None,
        local_health: int = 0,
    ) -> HealthDigest:
        self.seq += 1
        return HealthDigest(
            node_id=self.node_id,
            start_time_ms=self.start_time_ms,
            incarnation=self.incarnation,
            seq=self.seq,
            status=status,
            score=score,
            components=dict(components or {}),
            sent_at_ms=to_ms(now),
            version=version,
            http_addr=http_addr,
            p2p_addrs=tuple(p2p_addrs),
            certificate=certificate,
            local_health=local_health,
            wire_level=WIRE_LEVEL,
        )

    def leave(self, now: float) -> LeaveNotice:
        self.seq += 1
        return LeaveNotice(
            node_id=self.node_id,
            start_time_ms=self.start_time_ms,
            incarnation=self.incarnation,
            seq=self.seq,
            sent_at_ms=to_ms(now),
        )

    def suspect(
        self, suspect_id: str, basis: Version, now: float, *, refused: bool = False
    ) -> SuspectNotice:
        # A statement about another node, ordered by its basis: it does not take a seq.
        return SuspectNotice(
            observer_id=self.node_id,
            suspect_id=suspect_id,
            suspect_start_time_ms=basis.start_time_ms,
            suspect_incarnation=basis.incarnation,
            suspect_seq=basis.seq,
            sent_at_ms=to_ms(now),
            refused=refused,
        )
