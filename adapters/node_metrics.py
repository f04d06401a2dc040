"""The node's own Prometheus series, beyond the checks': event-loop lag, certificate expiry,
peers, pings and what was dropped at each hostile-input guard.

Every value is read at scrape time from the part that keeps it (``adapters.metrics``'
callbacks), so nothing here runs between scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from adapters.dht_record_guard import RECORD_DROP_REASONS
from adapters.metrics import (
    HealthMetrics,
    counter_callback,
    dht_record_metrics,
    gauge_callback,
    probe_answer_metrics,
    probe_stream_metrics,
)
from adapters.p2p_node import P2PNode
from mesh.certificate import MemberCertificate
from mesh.manager import CheckManager
from probes.enhanced import EnhancedHealthChecks
from probes.loop_lag import LoopLagMonitor
from probes.ports import STREAM_DROP_REASONS
from probes.probe_responder import ANSWER_DROP_REASONS, ProbeResponder

__all__ = ["add_node_metrics"]


def add_node_metrics(
    registry: CollectorRegistry,
    manager: CheckManager,
    *,
    lag: LoopLagMonitor,
    certificate: MemberCertificate | None,
    p2p: P2PNode,
    enhanced: EnhancedHealthChecks,
    responder: ProbeResponder,
) -> None:
    """Register the checks' series and the node's own on ``registry``."""
    HealthMetrics(registry, manager)
    gauge_callback(
        registry,
        "chorus_event_loop_lag_seconds",
        "Largest event-loop wake-up delay seen recently.",
        lambda: lag.max_lag,
    )
    if certificate is not None:
        expiry = certificate.expires_at_ms / 1000.0
        gauge_callback(
            registry,
            "chorus_admission_certificate_expiry_timestamp_seconds",
            "When this node's member certificate stops admitting it (Unix seconds).",
            lambda: expiry,
        )
    gauge_callback(
        registry,
        "chorus_p2p_connected_peers",
        "Peers with an open connection.",
        lambda: len(p2p.connected_peers()),
    )
    probe = enhanced.pubsub_probe
    if probe is not None:
        probe_stream_metrics(registry, probe.link.dropped, STREAM_DROP_REASONS)
    probe_answer_metrics(registry, responder.drops, ANSWER_DROP_REASONS)
    dht_record_metrics(registry, p2p.dht.record_guard.dropped, RECORD_DROP_REASONS)
    pinger = p2p.pinger
    counter_callback(
        registry,
        "chorus_p2p_pings",
        "Liveness pings to connected peers, by result: answered, failed (the peer is"
        " suspected), silent (failed early: the peer's kernel had the ping, its process"
        " did not answer; suspected too) or ignored (unanswered while this node was starved).",
        "result",
        lambda: {
            "answered": pinger.answered,
            "failed": pinger.failed - pinger.silent,
            "silent": pinger.silent,
            "ignored": pinger.ignored,
        },
    )
