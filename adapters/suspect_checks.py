"""Seeing for ourselves whether a suspect of our view is still there (SWIM's indirect
probe): a ping out of turn if we are connected to it, a dial-back if not.

Ping failures. The node's LinkPinger (adapters/pinger.py) pings one connected peer every
half second, round-robin; an unanswered ping reaches the view as ``on_ping_failed`` (the
peer is suspected, and the suspicion is gossiped for others to confirm or the peer to
refute). The pinger ignores failures while this node is starved, by the same measure the
view uses. With P2PConfig.abort_connection_on_ping_failure (off by default) it also closes
the connection, so the view hears a disconnect too, and the peer is redialled
(``adapters.link_keeper``).

Suspects. A peer whose connection closed, that our view suspects, or that a notice on the
topic suspects, is checked (``SuspectChecks.check``); a connected peer that left our last
out-of-turn ping unanswered is pinged again only after a growing wait
(``adapters.recheck_backoff``). The checks are bounded and paced by
``adapters.dialback.Verifier``; a dial-back our kernel refuses reaches the view as
``on_refused`` (rule 7 of ``mesh.cluster_view``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from adapters.dialback import DialResult, Verifier, dial_back
from adapters.gossip_metrics import GossipMetrics
from adapters.gossip_tuning import GossipTuning
from adapters.recheck_backoff import RecheckBackoff
from mesh.cluster_events import Outcome
from mesh.cluster_view import ClusterView
from mesh.messages import MemberState
from probes.rate_limit import TokenBucket

__all__ = ["OutOfTurnPinger", "Prober", "SuspectChecks"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")


class OutOfTurnPinger(Protocol):
    """The node's pinger as a check uses it (``adapters.pinger.LinkPinger``)."""

    @property
    def timeout(self) -> float: ...

    @property
    def patient_factor(self) -> float: ...

    async def probe_now(self, peer: str) -> bool | None: ...

    def peer_closed(self, peer: str) -> bool: ...


class Prober(Protocol):
    """What a check needs of the node (``P2PNode`` has it)."""

    @property
    def pinger(self) -> OutOfTurnPinger: ...

    def dial_back_target(
        self, peer: str, advertised: Sequence[str], *, certified: bool = False
    ) -> tuple[str, int] | None: ...


class SuspectChecks:
    """Checks of suspects for one node; ``run`` carries them out. ``connected`` holds the
    peers we are connected to, ``handle`` carries out what the view makes of a refused
    dial, and ``left`` says we have left."""

    def __init__(
        self,
        node: Prober,
        view: ClusterView,
        tuning: GossipTuning,
        metrics: GossipMetrics,
        *,
        connected: Collection[str],
        handle: Callable[[Outcome, str], None],
        left: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self._node = node
        self._view = view
        self._tuning = tuning
        self._metrics = metrics
        self._connected = connected
        self._handle = handle
        self._left = left
        self._clock = clock
        self._dial_budget = TokenBucket(tuning.dialback_rate, tuning.dialback_burst, 0.0)
        self._rechecks = RecheckBackoff(base=tuning.recheck_base, ceiling=tuning.recheck_ceiling)
        # A check may be an unanswered ping out of turn (its timeout, longer for a peer that
        # says it is starved, and up to 1 s more for the reset of its stream), then the
        # dial-back that follows it.
        ping_time = node.pinger.timeout * node.pinger.patient_factor
        check_time = ping_time + 1.0 + tuning.dialback_timeout + 0.5
        self._verifier = Verifier(
            timeout=check_time,
            cooldown=tuning.dialback_cooldown,
            max_concurrent=tuning.max_concurrent_dialbacks,
            max_pending=tuning.max_pending_dialbacks,
        )

    async def run(self) -> None:
        """Carry out the checks requested, until cancelled."""
        await self._verifier.run(self.verify)

    def check(self, peer: str, *, urgent: bool = False) -> None:
        """See for ourselves whether a suspect of our view is still there (SWIM's
        indirect probe, adapters/dialback.py): a ping out of turn if we are connected
        to it, a dial-back if not."""
        member = self._view.member(peer)
        if self._left() or member is None or member.state is not MemberState.SUSPECT:
            return
        dropped = self._verifier.counts["dropped"]
        self._verifier.request(peer, urgent=urgent)
        if self._verifier.counts["dropped"] > dropped:
            self._metrics.dialbacks.labels(result="dropped").inc()

    async def verify(self, peer: str) -> None:
        member = self._view.member(peer)
        if member is None or member.state is not MemberState.SUSPECT:
            return
        # An answered ping settles it. One unanswered reaches the view as PING_FAILED (a
        # confirmation of ours) and is followed by a dial-back, as no ping at all is
        # (no open connection: our connection events may lag the network's): a killed
        # process's connection can still look open to us for a moment, and only the
        # kernel's refusal makes it dead at once (rule 7).
        unanswered = False
        if peer in self._connected and self._node.pinger.peer_closed(peer):
            # Our kernel has its close or reset, py-libp2p has not read it yet: no ping on
            # a dead connection, and a refusal now counts (as after an unanswered ping).
            # The close alone proves nothing (a live peer may drop a link); the refusal
            # does, and a live peer's listener accepts our dial instead.
            unanswered = True
        elif peer in self._connected:
            if not self._rechecks.allows(peer, self._clock()):
                # Our last out-of-turn ping of it went unanswered and already counted; a
                # dial-back would not count while the connection looks open.
                self._metrics.dialbacks.labels(result="backed_off").inc()
                return
            answer = await self._node.pinger.probe_now(peer)
            if answer is True:
                self._rechecks.answered(peer)
                self._view.on_answered(peer, self._clock())
                return
            unanswered = answer is False
            if unanswered:
                self._rechecks.missed(peer, self._clock())
        address = self._node.dial_back_target(peer, member.p2p_addrs)
        vouch = True
        if address is None and self._dials_unmet():
            # A certified member we never met: where its own signed digest says it listens
            # (in a pulled snapshot too: a refusal there ends that life, the one we hold).
            # Its word only, so the refusal is ours alone, never a witness's (rule 7): an
            # address that is another host from where we stand must not kill it elsewhere.
            address = self._node.dial_back_target(peer, member.p2p_addrs, certified=True)
            vouch = False
        if address is not None and not self._dial_budget.take(self._clock()):
            # Sybils each suspected in turn must not make us a connection flood.
            self._metrics.dialbacks.labels(result="dropped").inc()
            return
        result = await dial_back(
            address, self._tuning.dialback_timeout, hold=self._tuning.dialback_hold
        )
        self._metrics.dialbacks.labels(result=str(result)).inc()
        logger.debug("dial-back of %s: %s", peer, result)
        if result is DialResult.OPEN:
            self._view.on_answered(peer, self._clock())
        if result is not DialResult.REFUSED:
            return
        # The view ignores it while a connection to the peer looks open, unless our ping
        # on that connection has just gone unanswered.
        try:
            outcome = self._view.on_refused(peer, self._clock(), unanswered=unanswered, vouch=vouch)
            self._handle(outcome, peer)
        except Exception as exc:  # nothing a peer's state caused may end the checks
            self._metrics.loop_failed("dialback", exc)

    def _dials_unmet(self) -> bool:
        """Whether a certified member we never met may be dialled where it advertised
        itself: only in a cluster small enough that every node meets every member."""
        view = self._view
        return (
            view.config.certified_members and view.live_count() <= self._tuning.unmet_dial_members
        )
