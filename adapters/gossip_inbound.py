"""What comes in on the topic: the validator that decides what we accept and forward, and
the handler that feeds what passed to the view.

A topic validator decodes every message (``decode_gossip``, signer = the libp2p-verified
origin): oversized, undecodable, signer-mismatched, malformed or badly dated messages are
rejected there, so we neither deliver nor forward them. With an admission policy
(``mesh.admission``) it then rejects digests of peers the policy does not admit, and
notices or leaves of non-members or of members whose certificate has expired
(NOT_ADMITTED), before any rate is spent. Last come the rates
(``adapters.signer_budget``): members have a bucket each and one together; signers our
view does not know share one bucket in an open cluster, and in a certified one have a
bucket each and a pool of their own (FLOODED beyond). Validators also run on our own
publishes (notes, "GossipSub"); ours are let through, and the envelope they were signed
in is kept for our snapshots (``mesh.signed``). Each rejection is counted in
``chorus_gossip_rejected_total{reason}`` and logged once per (signer, reason). Replays
pass the validator (they need the view's state) and are counted when the view rejects
them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from adapters.gossip_metrics import GossipMetrics
from adapters.gossip_tuning import GossipTuning
from adapters.signer_budget import SignerBudget
from mesh.admission import AdmissionPolicy, AdmissionReason
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Outcome
from mesh.cluster_view import ClusterView
from mesh.digest import decode_gossip
from mesh.messages import Gossip, HealthDigest, SuspectNotice
from mesh.rejection import Rejection, RejectReason

if TYPE_CHECKING:
    from probes.ports import PubSubMessage

__all__ = ["InboundGossip"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")


class InboundGossip:
    """``validate`` is the topic's validator, ``on_message`` its subscription handler.
    ``handle`` carries out what the view makes of a message, ``check_suspect`` has a
    suspect of our view checked, ``running`` says whether the service still runs."""

    def __init__(
        self,
        self_id: str,
        view: ClusterView,
        config: ClusterConfig,
        tuning: GossipTuning,
        metrics: GossipMetrics,
        admission: AdmissionPolicy,
        *,
        handle: Callable[[Outcome, str], None],
        check_suspect: Callable[[str], None],
        running: Callable[[], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._self_id = self_id
        self._view = view
        self._config = config
        self._metrics = metrics
        self._admission = admission
        self._handle = handle
        self._check_suspect = check_suspect
        self._running = running
        self._clock = clock
        self._wall = wall_clock
        self._signers = SignerBudget(
            tuning,
            certified=admission.enabled,
            max_keys=config.max_members,
            newcomer_burst=config.join_burst,
        )

    def validate(self, msg: PubSubMessage) -> bool:
        """py-libp2p topic validator: False drops the message and stops its forwarding."""
        if msg.from_peer == self._self_id:
            # Our own publish (validators run on those too): keep the envelope it was
            # signed in, for our snapshots to carry.
            self._keep_own_statement(msg)
            return True
        self._metrics.received.inc()
        self._metrics.bytes.labels(direction="in").inc(len(msg.data))
        # Decoded and judged by the admission policy before any rate: what is not admitted
        # must not spend the tokens that admitted joiners need.
        decoded = self._decode(msg)
        if not isinstance(decoded, Rejection):
            decoded = self.admitted(decoded) or decoded
        if isinstance(decoded, Rejection):
            self._metrics.count_rejection(msg.from_peer, decoded)
            return False
        if not self._signer_allowed(msg.from_peer):
            self._metrics.count_rejection(
                msg.from_peer, Rejection(RejectReason.FLOODED, "over the signer rate")
            )
            return False
        return True

    def _signer_allowed(self, signer: str) -> bool:
        member = self._view.knows(signer)
        return self._signers.allow(signer, member=member, now=self._clock())

    def admitted(self, message: Gossip) -> Rejection | None:
        """The admission policy's verdict on a statement's author (None: admitted). A digest
        must show the author is admitted; notices and leaves count only from members of our
        view, who were admitted by their digests."""
        if not self._admission.enabled:
            return None
        if isinstance(message, HealthDigest):
            verdict = self._admission.check(message.node_id, message.certificate, self._wall())
            if verdict is AdmissionReason.ADMITTED:
                return None
            return Rejection(RejectReason.NOT_ADMITTED, f"{message.node_id}: {verdict}")
        author = message.observer_id if isinstance(message, SuspectNotice) else message.node_id
        if not self._view.knows(author):
            return Rejection(RejectReason.NOT_ADMITTED, f"{author} is no member")
        # Membership lasts as long as the certificate of the member's last digest: an
        # authority retires a node by letting it expire, and its notices must not keep
        # confirming deaths until its silence makes it dead.
        verdict = self._admission.check(author, self._view.certificate(author), self._wall())
        if verdict is AdmissionReason.ADMITTED:
            return None
        return Rejection(RejectReason.NOT_ADMITTED, f"{author}: {verdict}")

    def _keep_own_statement(self, msg: PubSubMessage) -> None:
        if not msg.envelope:
            return
        own = decode_gossip(
            msg.data, self._self_id, self._wall(), config=self._config, check_age=False
        )
        if not isinstance(own, Rejection):
            self._view.record_statement(own, msg.envelope)

    def _decode(self, msg: PubSubMessage) -> Gossip | Rejection:
        return decode_gossip(msg.data, msg.from_peer, self._wall(), config=self._config)

    async def on_message(self, msg: PubSubMessage) -> None:
        await trio.lowlevel.checkpoint()
        # Ours was applied when we sent it; after run() ends the subscription lingers.
        if msg.from_peer == self._self_id or not self._running():
            return
        try:
            decoded = self._decode(msg)
            if isinstance(decoded, Rejection):
                # Aged out between the validator and us: rare, but count it.
                self._metrics.count_rejection(msg.from_peer, decoded)
                return
            outcome = self._view.on_gossip(decoded, self._clock(), msg.envelope)
            if self._is_duplicate(decoded, outcome):
                self._metrics.duplicates.inc()
                return
            self._handle(outcome, msg.from_peer)
            if isinstance(decoded, SuspectNotice) and outcome.accepted:
                # Already suspect here (no transition) yet maybe crashed since we last
                # looked: see for ourselves (rule 7 of mesh.cluster_view).
                self._check_suspect(decoded.suspect_id)
        except Exception:  # nothing a peer sends may break the subscription
            self._metrics.errors.labels(where="handle").inc()
            logger.exception("health gossip from %s could not be handled", msg.from_peer)

    def _is_duplicate(self, message: Gossip, outcome: Outcome) -> bool:
        """The very statement the view holds: a second path, not a replay. A peer's digest
        often arrives in a pulled view first and then by gossip."""
        rejection = outcome.rejection
        if rejection is None or rejection.reason is not RejectReason.REPLAYED:
            return False
        if isinstance(message, SuspectNotice):
            return False
        held = self._view.member(message.node_id)
        return held is not None and held.key == message.key
