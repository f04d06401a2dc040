"""Prometheus metrics for one node, on an explicit registry (never the global one).

Counters and the duration histogram are updated as results arrive (a listener on the
manager). Scores, status and per-check state are read from the manager at scrape time by a
custom collector: they are cheap to compute and can never go stale.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mesh.flap import CheckState
from mesh.manager import CheckManager, ResultEvent
from mesh.model import FailureReason, Status

# Check runs range from sub-millisecond (memory) to the 20 s DHT probe timeout.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry, manager: CheckManager) -> None:
        self.registry = registry
        self.passed = Counter(
            "chorus_health_checks_passed_total",
            "Health check runs that passed.",
            ["check_name"],
            registry=registry,
        )
        # The reference's IncrementHealthCheckFailed(name, reason), with the reason mapped
        # to mesh.model.FailureReason: never the check's own error text, which may carry
        # what a peer sent and would mint a series per distinct message.
        self.failed = Counter(
            "chorus_health_checks_failed_total",
            "Health check runs that failed, by reason: unhealthy (the check reported"
            " failure), timeout, exception (it raised) or invalid_result.",
            ["check_name", "reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "chorus_health_check_duration_seconds",
            "How long each health check run took.",
            ["check_name"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.transitions = Counter(
            "chorus_health_check_transitions_total",
            "Flap-controlled state changes of each check.",
            ["check_name", "to"],
            registry=registry,
        )
        registry.register(_StateCollector(manager))
        manager.add_listener(self.observe)

    def observe(self, event: ResultEvent) -> None:
        name = event.check.name
        if event.result.healthy:
            self.passed.labels(check_name=name).inc()
        else:
            reason = event.failure or FailureReason.UNHEALTHY
            self.failed.labels(check_name=name, reason=str(reason)).inc()
        self.duration.labels(check_name=name).observe(event.result.latency)
        if event.transition:
            self.transitions.labels(check_name=name, to=str(event.after.state)).inc()


class _StateCollector(Collector):
    def __init__(self, manager: CheckManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        manager = self._manager
        yield _gauge(
            "chorus_system_health_score",
            "Overall health score of this node (0-1).",
            value=manager.system_score(),
        )
        components = GaugeMetricFamily(
            "chorus_component_health_score",
            "Health score of each component (0-1).",
            labels=["component"],
        )
        for component, score in manager.component_scores().items():
            components.add_metric([component], score)
        yield components
        current, _ = manager.decide()
        status = GaugeMetricFamily(
            "chorus_health_status",
            "1 for the node's current status, 0 for the others.",
            labels=["status"],
        )
        for candidate in Status:
            status.add_metric([str(candidate)], 1.0 if candidate is current else 0.0)
        yield status
        passing = GaugeMetricFamily(
            "chorus_health_check_passing",
            "1 while a check's flap-controlled state is passing, 0 while failing or pending.",
            labels=["check_name", "critical"],
        )
        for check in manager.checks:
            if check.enabled:
                state = manager.flap_state(check.name).state
                passing.add_metric(
                    [check.name, str(check.critical).lower()],
                    1.0 if state is CheckState.PASSING else 0.0,
                )
        yield passing
        yield _gauge(
            "chorus_health_uptime_seconds",
            "Seconds since this node started.",
            value=manager.uptime(),
        )


def _gauge(name: str, documentation: str, *, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def gauge_callback(
    registry: CollectorRegistry, name: str, documentation: str, read: Callable[[], float]
) -> None:
    """A gauge whose value is read at scrape time (event-loop lag, peer counts, ...)."""

    class _One(Collector):
        def collect(self) -> Iterator[Metric]:
            yield _gauge(name, documentation, value=read())

    registry.register(_One())


def counter_callback(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    label: str,
    read: Callable[[], Mapping[str, float]],
) -> None:
    """A counter family kept elsewhere (e.g. LinkPinger's tallies), read at scrape time:
    one sample per ``label`` value. ``name`` without the ``_total`` suffix."""

    class _Counts(Collector):
        def collect(self) -> Iterator[Metric]:
            family = CounterMetricFamily(name, documentation, labels=[label])
            for value, count in read().items():
                family.add_metric([value], count)
            yield family

    registry.register(_Counts())


def dropped_counter(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    read: Callable[[], Mapping[str, float]],
    reasons: Iterable[str],
) -> None:
    """A ``{reason}`` counter family kept elsewhere, read at scrape time, with every known
    reason present from the start (0 until it happens): a drop that never happened is a
    zero to a dashboard, not a missing series. ``name`` without the ``_total`` suffix."""
    known = tuple(reasons)

    def counts() -> dict[str, float]:
        return {**dict.fromkeys(known, 0.0), **read()}

    counter_callback(registry, name, documentation, "reason", counts)


def probe_stream_metrics(
    registry: CollectorRegistry, dropped: Mapping[str, float], reasons: Iterable[str]
) -> None:
    """``chorus_probe_streams_dropped_total{reason}`` from a ``LibP2PLink.dropped``
    (``probes.ports.STREAM_DROP_REASONS``)."""
    dropped_counter(
        registry,
        "chorus_probe_streams_dropped",
        "Inbound probe-answer streams dropped: refused at once because the peer already had"
        " its share open (per_peer) or every slot was taken (global), stalled past the read"
        " timeout (timeout), over the size limit (too_large), or broken (error).",
        lambda: dropped,
        reasons,
    )


def probe_answer_metrics(
    registry: CollectorRegistry, drops: Mapping[str, float], reasons: Iterable[str]
) -> None:
    """``chorus_probe_answers_dropped_total{reason}`` from a ``ProbeResponder.drops``
    (``probes.probe_responder.ANSWER_DROP_REASONS``)."""
    dropped_counter(
        registry,
        "chorus_probe_answers_dropped",
        "PubSub probes this node was named in and did not answer, by reason (unwanted:"
        " the origin is no member of the view under an admission policy; new_origins,"
        " rate_limited, queue_full: over a budget; not_named: not ours to answer).",
        lambda: drops,
        reasons,
    )


def dht_record_metrics(
    registry: CollectorRegistry, dropped: Mapping[str, float], reasons: Iterable[str]
) -> None:
    """``chorus_dht_records_dropped_total{reason}`` from a ``RecordGuard.dropped``
    (``adapters.dht_record_guard.RECORD_DROP_REASONS``)."""
    dropped_counter(
        registry,
        "chorus_dht_records_dropped",
        "DHT records from peers not kept: refused as over the record size bound (oversized),"
        " or the oldest record dropped to keep a publisher within its quota"
        " (publisher_quota) or all publishers within the store's (store_full).",
        lambda: dropped,
        reasons,
    )


def process_and_build_metrics(registry: CollectorRegistry, version: str) -> None:
    """The standard ``process_*`` and ``python_*`` series (the node keeps its own registry,
    so prometheus-client's defaults, which sit on the global one, never reach /metrics),
    and ``chorus_build_info``: 1, labelled with what runs, for joins in queries."""
    # Counters' *_created gauges double the exposition and no alert or panel reads them.
    # (prometheus-client leaves this function unannotated, which mypy --strict will not call.)
    cast(Callable[[], None], disable_created_metrics)()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    try:
        libp2p = dist_version("libp2p")
    except PackageNotFoundError:
        libp2p = "unknown"
    labels = {"version": version, "python": platform.python_version(), "libp2p": libp2p}

    class _BuildInfo(Collector):
        def collect(self) -> Iterator[Metric]:
            family = GaugeMetricFamily(
                "chorus_build_info",
                "Always 1; the labels say which chorus-health, Python and py-libp2p run.",
                labels=list(labels),
            )
            family.add_metric(list(labels.values()), 1.0)
            yield family

    registry.register(_BuildInfo())
