"""What the gossip service counts, and how it reports trouble without flooding the log.

``GossipMetrics`` holds the service's counters (``chorus_gossip_*``,
``chorus_cluster_pulls_total``) and registers ``ClusterCollector``, whose gauges are read
from the view at scrape time. Two reporting rules live here because every part of the
service follows them: a rejected message or view is counted always and logged once per
(signer, reason), and an error a loop or handler caught is counted always and logged once
per kind. A hostile peer that triggers either again and again must not flood the log.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.dialback import DialResult
from mesh.cluster_transitions import Transition
from mesh.cluster_view import ClusterView
from mesh.messages import MemberState
from mesh.rejection import Rejection, RejectReason

__all__ = ["ClusterCollector", "GossipMetrics", "log_transition"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")


class GossipMetrics:
    """The service's counters, and its rules for counting and logging what went wrong."""

    def __init__(
        self, registry: CollectorRegistry, view: ClusterView, *, rejection_log_keys: int
    ) -> None:
        self.received = Counter(
            "chorus_gossip_received_total",
            "Health gossip messages received from peers, valid or not.",
            registry=registry,
        )
        self.published = Counter(
            "chorus_gossip_published_total",
            "Health gossip messages this node published.",
            registry=registry,
        )
        self.rejected = Counter(
            "chorus_gossip_rejected_total",
            "Health gossip messages and pulled views rejected, by reason.",
            ["reason"],
            registry=registry,
        )
        self.bytes = Counter(
            "chorus_gossip_bytes_total",
            "Bytes of health gossip messages, by direction (in, out).",
            ["direction"],
            registry=registry,
        )
        self.duplicates = Counter(
            "chorus_gossip_duplicates_total",
            "Statements received that the view already held (e.g. first learned by a pull).",
            registry=registry,
        )
        self.pulls = Counter(
            "chorus_cluster_pulls_total",
            "View pulls, one per page, as client (ok, failed, rejected, skipped) and server"
            " (served, refused).",
            ["side", "result"],
            registry=registry,
        )
        self.dialbacks = Counter(
            "chorus_gossip_dialbacks_total",
            "Dial-backs of lost or suspected peers, by result: refused (nothing listens:"
            " a crash), open, unknown (no answer in time), dropped (too many pending),"
            " backed_off (a connected suspect that left our last out-of-turn ping"
            " unanswered, not pinged again yet).",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "chorus_gossip_errors_total",
            "Errors caught in the gossip service instead of ending it, by where they arose.",
            ["where"],
            registry=registry,
        )
        for reason in RejectReason:
            self.rejected.labels(reason=str(reason))
        for where in ("publish", "tick", "handle", "merge", "serve", "redial", "dialback"):
            self.errors.labels(where=where)
        for result in (*DialResult, "dropped", "backed_off"):
            self.dialbacks.labels(result=str(result))
        for direction in ("in", "out"):
            self.bytes.labels(direction=direction)
        registry.register(ClusterCollector(view))
        self._rejection_log_keys = rejection_log_keys
        self._logged_rejections: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._errors_logged: set[str] = set()

    def count_rejection(self, signer: str, rejection: Rejection) -> None:
        reason = str(rejection.reason)
        self.rejected.labels(reason=reason).inc()
        key = (signer, reason)
        if key in self._logged_rejections:
            return
        self._logged_rejections[key] = None
        if len(self._logged_rejections) > self._rejection_log_keys:
            self._logged_rejections.popitem(last=False)
        # Once per (signer, reason): a hostile peer must not flood the log. Old statements
        # are routine (GossipSub's IWANT and message cache deliver out of order): INFO.
        level = logging.INFO if rejection.reason is RejectReason.REPLAYED else logging.WARNING
        logger.log(
            level,
            "rejected health gossip from %s: %s (%s); further ones are only counted",
            signer,
            reason,
            rejection.detail[:200],
        )

    def loop_failed(self, where: str, exc: Exception) -> None:
        """Count an error a loop caught, and log the first of each kind (a peer that
        triggers one repeatedly must not flood the log)."""
        self.errors.labels(where=where).inc()
        kind = f"{where}:{type(exc).__name__}"
        if kind in self._errors_logged or len(self._errors_logged) >= 64:
            return
        self._errors_logged.add(kind)
        logger.error(
            "health gossip %s failed: %r; further such errors are only counted",
            where,
            exc,
            exc_info=exc,
        )


class ClusterCollector(Collector):
    """Gauges read from the view at scrape time: never stale, nothing to update."""

    def __init__(self, view: ClusterView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        counts = self._view.counts()
        peers = GaugeMetricFamily(
            "chorus_cluster_peers",
            "Members of this node's cluster view (itself included), by state.",
            labels=["state"],
        )
        for state in MemberState:
            peers.add_metric([str(state)], counts[state])
        yield peers
        yield GaugeMetricFamily(
            "chorus_cluster_health_score",
            "Cluster health score as this node's view sees it (0-1).",
            value=self._view.health().score,
        )
        yield GaugeMetricFamily(
            "chorus_cluster_timeout_multiplier",
            "How many times this node stretches its silence and suspicion timeouts"
            " (Lifeguard's local health: its own loop lag, late ping answers).",
            value=self._view.multiplier,
        )
        yield GaugeMetricFamily(
            "chorus_cluster_self_doubt",
            "Alive members whose pings failed beyond the first, plus members whose"
            " suspicions of this node it refuted, in the last doubt_window seconds"
            " (capped): the pinger's interval and timeout are stretched by it + 1.",
            value=self._view.doubt,
        )


def log_transition(event: Transition) -> None:
    """Log a member's transition in our view: a change of state at INFO (a death at
    WARNING), a change of status only at DEBUG."""
    if event.from_state is event.to_state:
        logger.debug(
            "cluster: %s %s status %s -> %s",
            event.peer,
            event.to_state,
            event.from_status,
            event.to_status,
        )
        return
    level = logging.WARNING if event.to_state in (MemberState.DEAD,) else logging.INFO
    logger.log(
        level,
        "cluster: %s %s -> %s (%s%s)",
        event.peer,
        event.from_state or "new",
        event.to_state or "forgotten",
        event.cause,
        f", {event.detail}" if event.detail else "",
    )
