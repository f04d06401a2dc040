"""Assemble and run one health node inside a single ``trio.run``.

``run_node`` is ``nursery.start``-able: it reports a ``NodeHandle`` (with the HTTP port
actually bound, useful with port 0) once the endpoints answer, and returns the shutdown
report when the node has stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, Counter
from quart_trio import QuartTrio

from adapters.dashboard import add_dashboard
from adapters.dht import DEFAULT_RECORD_TTL, RECORD_DROP_REASONS
from adapters.election_check import ELECTION_CHECK
from adapters.gossip import GossipService
from adapters.gossip_tuning import GossipTuning
from adapters.http_app import add_cluster_routes, add_json_route, create_app
from adapters.libp2p_host import P2PConfig, P2PError, P2PNode, open_p2p_node
from adapters.libp2p_link import probe_for_node
from adapters.metrics import (
    HealthMetrics,
    counter_callback,
    dht_record_metrics,
    gauge_callback,
    probe_answer_metrics,
    probe_stream_metrics,
    process_and_build_metrics,
)
from mesh import cluster_config as cluster_presets
from mesh.admission import (
    AdmissionPolicy,
    AdmissionReason,
    MemberCertificate,
    parse_certificate,
    policy_from_config,
)
from mesh.cluster_config import ClusterConfig
from mesh.config import NodeConfig, is_loopback_host
from mesh.errors import ConfigError
from mesh.flap import Thresholds
from mesh.manager import CheckManager
from mesh.model import HealthCheck
from mesh.shutdown import Component, Phase, ShutdownManager, ShutdownReport
from probes.dht_probe import ACTIVE_DHT_CHECK, DHTProbe, active_dht_check
from probes.enhanced import (
    DHT_ENHANCED,
    P2P_CONNECTIVITY,
    PUBSUB_ENHANCED,
    REPLICATION_HEALTH,
    TASK_MANAGER,
    EnhancedHealthChecks,
)
from probes.health_config import DEFAULT_CONFIG, DEVNET_CONFIG, HealthConfig
from probes.local import (
    DISK_SPACE,
    MEMORY,
    RESOURCE_HEALTH,
    disk_space_check,
    memory_check,
    resource_health_check,
)
from probes.loop_lag import EVENT_LOOP_LAG, LoopLagMonitor, event_loop_lag_check
from probes.ports import STREAM_DROP_REASONS
from probes.probe_responder import ANSWER_DROP_REASONS, ProbeResponder
from probes.pubsub_probe import ACTIVE_PUBSUB_CHECK, active_pubsub_check
from probes.summary import health_summary
from probes.system_stats import PsutilStats, SystemStats

log = logging.getLogger(__name__)

# Exit codes of the process (documented in the README).
EXIT_CLEAN = 0
EXIT_FORCED = 1
EXIT_CONFIG = 2
EXIT_CRITICAL = 3

# Network checks first run this long after start: bootstrap dials take milliseconds on a
# LAN, GossipSub learns its peers' subscriptions within a heartbeat (1 s).
NETWORK_START_DELAY = 2.0


@dataclass
class NodeHandle:
    config: NodeConfig
    node_id: str
    manager: CheckManager
    shutdown: ShutdownManager
    registry: CollectorRegistry
    app: QuartTrio
    http_port: int
    p2p: P2PNode
    gossip: GossipService

    @property
    def http_url(self) -> str:
        return f"http://{self.config.health_host}:{self.http_port}"


def local_checks(config: NodeConfig, stats: SystemStats, lag: LoopLagMonitor) -> list[HealthCheck]:
    return [
        disk_space_check(config.disk_path, config.disk_threshold, stats=stats),
        memory_check(config.memory_threshold, stats=stats),
        resource_health_check(
            stats,
            path=config.disk_path,
            cpu_threshold=config.cpu_threshold,
            memory_threshold=config.memory_threshold,
            disk_threshold=config.disk_threshold,
        ),
        event_loop_lag_check(lag, config.loop_lag_threshold),
    ]


def network_checks(
    config: NodeConfig, p2p: P2PNode, wanted: Callable[[str], bool] | None = None
) -> tuple[list[HealthCheck], EnhancedHealthChecks, ProbeResponder]:
    """The reference's active probes and enhanced checks, on this node's libp2p host.
    ``wanted``: the peers the PubSub probe names first and answers at all (None: any)."""
    health_config = health_config_for(config)
    probe, responder = probe_for_node(p2p, wanted=wanted)
    # Responsive, not merely connected: a frozen peer keeps its TCP connection open, and
    # must count neither towards connectivity nor as a peer to read a DHT record back from.
    dht_probe = DHTProbe(p2p.dht, connected=p2p.responsive_peers)
    enhanced = EnhancedHealthChecks(
        health_config,
        connected_peers=p2p.responsive_peers,
        pubsub_probe=probe,
        dht_probe=dht_probe,
    )
    return [active_pubsub_check(probe), active_dht_check(dht_probe)], enhanced, responder


def share_probes(manager: CheckManager, enhanced: EnhancedHealthChecks) -> None:
    """Let each of the reference's active checks read its enhanced twin's probe while it is
    fresh (probes/last_outcome.py): an outcome at most the twin's interval plus its timeout
    old, so that one is always there while the twin runs on time."""
    checks = {check.name: check for check in manager.checks}
    pairs = (
        (ACTIVE_PUBSUB_CHECK, PUBSUB_ENHANCED, enhanced.pubsub_probe),
        (ACTIVE_DHT_CHECK, DHT_ENHANCED, enhanced.dht_probe),
    )
    for active, twin_name, probe in pairs:
        twin = checks.get(twin_name)
        if probe is None or active not in checks:
            continue
        if twin is not None and twin.enabled:
            probe.last.max_age = twin.interval + twin.timeout
        else:  # nothing fresh will come: the active check probes for itself
            probe.last.max_age = 0.0


def health_config_for(config: NodeConfig) -> HealthConfig:
    """The profile's HealthConfig with the node's own settings in it."""
    preset = DEVNET_CONFIG if config.profile == "devnet" else DEFAULT_CONFIG
    return replace(
        preset,
        min_peers=config.min_peers,
        # An explicit election interval beats --probe-interval, which beats the profile.
        election_probe_interval=(
            config.election_probe_interval
            or config.probe_interval
            or preset.election_probe_interval
        ),
        election_probe_timeout=config.election_probe_timeout,
        enable_election_probes=config.enable_election_probes,
    )


def cluster_config_for(config: NodeConfig) -> ClusterConfig:
    return cluster_presets.devnet() if config.profile == "devnet" else cluster_presets.production()


def build_manager(config: NodeConfig, node_id: str) -> CheckManager:
    return CheckManager(
        node_id=node_id,
        version=config.node_version,
        thresholds=Thresholds(fail_after=config.fail_after, pass_after=config.pass_after),
        history_size=config.history_size,
    )


# Checks that need peers: they first run after NETWORK_START_DELAY, and --probe-interval
# sets their interval.
NETWORK_CHECKS = frozenset(
    {
        ACTIVE_PUBSUB_CHECK,
        ACTIVE_DHT_CHECK,
        PUBSUB_ENHANCED,
        DHT_ENHANCED,
        P2P_CONNECTIVITY,
        REPLICATION_HEALTH,
        ELECTION_CHECK,
    }
)
# Every check a node registers by itself; checked before anything starts so that a typo in
# checks_disabled fails at once with exit code 2.
BUILT_IN_CHECKS = NETWORK_CHECKS | {
    DISK_SPACE,
    MEMORY,
    RESOURCE_HEALTH,
    EVENT_LOOP_LAG,
    TASK_MANAGER,
}


def check_disabled_names(config: NodeConfig, extra: Sequence[HealthCheck]) -> None:
    known = BUILT_IN_CHECKS | {check.name for check in extra}
    unknown = sorted(set(config.checks_disabled) - known)
    if unknown:
        raise ConfigError(
            f"checks_disabled names unknown check(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(known))})"
        )


def p2p_config(config: NodeConfig) -> P2PConfig:
    try:
        # The replication check re-reads the 3 newest DHT probe records: they must live
        # longer than 3 probe intervals.
        ttl = max(DEFAULT_RECORD_TTL, 4 * (config.probe_interval or 0.0))
        return P2PConfig(
            key_file=Path(config.data_dir) / "identity.key",
            listen_host=config.p2p_host,
            listen_port=config.p2p_port,
            bootstrap=config.bootstrap_peers,
            dht_record_ttl=ttl,
        )
    except P2PError as exc:
        raise ConfigError(str(exc)) from None


def admission_for(
    config: NodeConfig, node_id: str, *, now: float | None = None
) -> tuple[AdmissionPolicy, MemberCertificate | None]:
    """The admission policy the configuration asks for and our own certificate.

    A certificate that is unreadable, for another peer, or not valid now is a configuration
    error (exit 2): a node whose digests its peers reject would run unseen. Without any
    policy, the production profile says once that anyone may join (issue 12)."""
    policy = policy_from_config(config)
    certificate: MemberCertificate | None = None
    if config.member_certificate is not None:
        path = Path(config.member_certificate)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"member certificate {path}: cannot read it: {exc}") from None
        certificate = parse_certificate(text)
        if certificate.peer_id != node_id:
            raise ConfigError(
                f"member certificate {path} admits {certificate.peer_id}, not this node ({node_id})"
            )
    if policy.enabled:
        verdict = policy.check(node_id, certificate, time.time() if now is None else now)
        if verdict is not AdmissionReason.ADMITTED:
            raise ConfigError(
                f"this node ({node_id}) is not admitted by its own admission policy: {verdict}"
                " (check --member-certificate, --authority-keys and --admit-peers)"
            )
        log.info(
            "admission policy: %d listed peers, %d authority keys",
            len(policy.allowed_peers),
            len(policy.authority_keys),
        )
    elif config.profile == "production":
        log.warning(
            "no admission policy: any peer that can reach this node may join its cluster view"
            " (set --authority-keys with --member-certificate, or --admit-peers)"
        )
    return policy, certificate


async def run_node(
    config: NodeConfig,
    *,
    handle_signals: bool = False,
    stats: SystemStats | None = None,
    extra_checks: Sequence[HealthCheck] = (),
    task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
) -> ShutdownReport:
    check_disabled_names(config, extra_checks)
    registry = CollectorRegistry()
    process_and_build_metrics(registry, config.node_version)
    inbound_drops = Counter(
        "chorus_p2p_inbound_dropped_total",
        "Pubsub input from peers dropped as undecodable or invalid.",
        ["reason"],
        registry=registry,
    )
    try:
        network = open_p2p_node(
            p2p_config(config), on_drop=lambda reason: inbound_drops.labels(reason=reason).inc()
        )
        async with network as p2p:
            return await _run_with_network(
                config, p2p, registry, handle_signals, stats, extra_checks, task_status
            )
    except P2PError as exc:
        raise ConfigError(str(exc)) from None


async def _run_with_network(
    config: NodeConfig,
    p2p: P2PNode,
    registry: CollectorRegistry,
    handle_signals: bool,
    stats: SystemStats | None,
    extra_checks: Sequence[HealthCheck],
    task_status: trio.TaskStatus[NodeHandle],
) -> ShutdownReport:
    node_id = p2p.peer_id
    lag = LoopLagMonitor(threshold=config.loop_lag_threshold)
    manager = build_manager(config, node_id)
    policy, certificate = admission_for(config, node_id)
    gossip = GossipService(
        p2p,
        manager,
        cluster_config_for(config),
        registry=registry,
        starved=lambda: lag.starved,
        admission=policy,
        certificate=certificate,
        tuning=GossipTuning(meet_links=config.meet_links),
    )
    for check in local_checks(config, stats or PsutilStats(), lag):
        manager.register(check)
    # With an admission policy, strangers are neither named by our probes nor answered
    # (issue 12): only members of the cluster view are wanted.
    view = gossip.view
    wanted = (lambda peer: view.member(peer) is not None) if policy.enabled else None
    active, enhanced, responder = network_checks(config, p2p, wanted)
    for check in active:
        manager.register(check)
    timing = enhanced.config
    if timing.enable_election_probes:
        manager.register(
            gossip.election_check(
                interval=timing.election_probe_interval, timeout=timing.election_probe_timeout
            )
        )
    for check in manager.checks + enhanced.attach(manager):
        if check.name in NETWORK_CHECKS:
            check.start_delay = NETWORK_START_DELAY
            if check.name != ELECTION_CHECK:  # health_config_for already chose its interval
                check.interval = config.probe_interval or check.interval
    for check in extra_checks:
        manager.register(check)
    for check in manager.checks:
        check.enabled = check.enabled and check.name not in config.checks_disabled
    share_probes(manager, enhanced)

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
        " suspected) or ignored (unanswered while this node was starved).",
        "result",
        lambda: {
            "answered": pinger.answered,
            "failed": pinger.failed,
            "ignored": pinger.ignored,
        },
    )
    shutdown = ShutdownManager(config.shutdown_timeout)
    # Readiness turns 503 at the very moment shutdown is asked for, before any phase runs.
    shutdown.on_request(lambda _reason: manager.begin_stopping())
    if config.shutdown_on_critical:
        manager.set_shutdown_handler(partial(shutdown.request, failure=True))
    app = create_app(manager, registry, token=config.health_token)
    add_json_route(app, "/health/summary", lambda: health_summary(manager, enhanced))
    add_cluster_routes(app, gossip)
    add_dashboard(app)

    async with trio.open_nursery() as nursery:
        await nursery.start(lag.run)
        await nursery.start(responder.run)
        manager_scope = await nursery.start(_cancellable, manager.run)
        http_port, http_done, http_stop = await _start_http(nursery, app, config)
        # HTTP first, so our very first digest already carries its address.
        gossip.http_addr = f"http://{config.advertise_host or config.health_host}:{http_port}"
        await nursery.start(gossip.run)
        log.info(
            "node %s serving health endpoints on http://%s:%d, libp2p on %s",
            node_id,
            config.health_host,
            http_port,
            ", ".join(p2p.listen_addrs),
        )
        if config.health_token is None and not is_loopback_host(config.health_host):
            log.warning(
                "health endpoints on %s have no token: anyone who reaches this port reads"
                " the checks, their history and the cluster view (--health-token-file)",
                config.health_host,
            )

        async def stop_manager() -> None:
            manager_scope.cancel()

        async def stop_http() -> None:
            http_stop.set()
            await http_done.wait()

        # Tell the cluster first, as the drain begins: peers show us as left at once
        # (issue 13: within 0.5 s, not after the drain), not dead later, while HTTP keeps
        # answering 503 "stopping" for Kubernetes through the drain.
        shutdown.add_hook(Phase.PRE_SHUTDOWN, "gossip-leave", gossip.leave)
        shutdown.add_hook(Phase.PRE_SHUTDOWN, "drain", partial(_drain, manager, config))
        shutdown.register(Component("health-manager", stop_manager, priority=10))
        # HTTP goes last so probes keep seeing 503 "stopping" while the rest winds down.
        shutdown.register(Component("health-http", stop_http, priority=90, timeout=5.0))
        if handle_signals:
            nursery.start_soon(_watch_signals, shutdown)
            shutdown.on_request(lambda _r: _start_watchdog(config.shutdown_timeout + 10.0))
        task_status.started(
            NodeHandle(config, node_id, manager, shutdown, registry, app, http_port, p2p, gossip)
        )
        report = await shutdown.run()
        nursery.cancel_scope.cancel()
    if report.failure:
        log.error("node stopped because a critical check kept failing: %s", report.reason)
    return report


def exit_code(report: ShutdownReport) -> int:
    if report.forced:
        return EXIT_FORCED
    return EXIT_CRITICAL if report.failure else EXIT_CLEAN


async def _cancellable(
    run: Callable[..., object], *, task_status: trio.TaskStatus[trio.CancelScope]
) -> None:
    with trio.CancelScope() as scope:
        await trio.lowlevel.checkpoint()
        task_status.started(scope)
        await run()  # type: ignore[misc]


async def _start_http(
    nursery: trio.Nursery, app: QuartTrio, config: NodeConfig
) -> tuple[int, trio.Event, trio.Event]:
    hc = HypercornConfig()
    hc.bind = [f"{config.health_host}:{config.health_port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 2.0
    stop, done = trio.Event(), trio.Event()

    async def serve_until_stopped(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(app, hc, shutdown_trigger=stop.wait, task_status=task_status)
        finally:
            done.set()

    try:
        binds: list[str] = await nursery.start(serve_until_stopped)
    except (OSError, BaseExceptionGroup) as exc:
        # hypercorn binds inside its own nursery, so the OSError may arrive wrapped.
        bind_error = _find(exc, OSError)
        if bind_error is None:
            raise
        raise ConfigError(
            f"cannot listen on {config.health_host}:{config.health_port}:"
            f" {bind_error.strerror or bind_error}"
        ) from exc
    return int(binds[0].rsplit(":", 1)[1]), done, stop


def _find(exc: BaseException, kind: type[OSError]) -> OSError | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


async def _drain(manager: CheckManager, config: NodeConfig) -> None:
    log.info(
        "node %s is stopping; readiness answers 503, draining for %gs",
        manager.node_id,
        config.drain_seconds,
    )
    await trio.sleep(config.drain_seconds)


async def _watch_signals(shutdown: ShutdownManager) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not shutdown.request(f"received {name}"):
                # A second signal means the operator will not wait: leave now.
                log.error("second %s during shutdown; exiting at once", name)
                os._exit(EXIT_FORCED)


def _start_watchdog(seconds: float) -> None:
    """Backstop for shutdown: code that blocks the event loop itself would stop trio's own
    timeout from firing, so a plain thread ends the process if the loop never finishes."""

    def expire() -> None:
        log.critical("shutdown still running after %.0fs; forcing exit", seconds)
        os._exit(EXIT_FORCED)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
