"""Assemble and run one health node inside a single ``trio.run``.

``run_node`` is ``nursery.start``-able: it reports a ``NodeHandle`` (with the HTTP port
actually bound, useful with port 0) once the endpoints answer, and returns the shutdown
report when the node has stopped.

The parts live in modules of their own: each part's configuration (``node_settings``), the
built-in checks (``node_checks``), the node's metrics (``node_metrics``), the HTTP server
(``node_http``) and the process's signals and exit codes (``node_process``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, Counter
from quart_trio import QuartTrio

from adapters import node_settings
from adapters.dashboard import add_dashboard
from adapters.election_check import ELECTION_CHECK
from adapters.gossip import GossipService
from adapters.gossip_tuning import GossipTuning
from adapters.http_app import add_cluster_routes, add_json_route, create_app
from adapters.libp2p_host import open_p2p_node
from adapters.metrics import process_and_build_metrics
from adapters.node_checks import (
    NETWORK_CHECKS,
    NETWORK_START_DELAY,
    check_disabled_names,
    local_checks,
    network_checks,
    share_probes,
)
from adapters.node_http import start_http
from adapters.node_metrics import add_node_metrics
from adapters.node_process import start_watchdog, watch_signals
from adapters.p2p_config import P2PError
from adapters.p2p_node import P2PNode
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.health_token import is_loopback_host
from mesh.manager import CheckManager
from mesh.model import HealthCheck
from mesh.shutdown import Component, Phase, ShutdownManager, ShutdownReport
from probes.loop_lag import LoopLagMonitor
from probes.summary import health_summary
from probes.system_stats import PsutilStats, SystemStats

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's own annotations for mypy; its
    # TaskStatus is the same protocol as trio.TaskStatus.
    from trio_typing import TaskStatus

__all__ = ["NodeHandle", "run_node"]

# Each part's configuration is looked up in node_settings at call time, not imported by
# name: devnet/costinst replaces those functions there to measure other settings.

log = logging.getLogger(__name__)


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


async def run_node(
    config: NodeConfig,
    *,
    handle_signals: bool = False,
    stats: SystemStats | None = None,
    extra_checks: Sequence[HealthCheck] = (),
    task_status: TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
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
            node_settings.p2p_config(config),
            on_drop=lambda reason: inbound_drops.labels(reason=reason).inc(),
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
    task_status: TaskStatus[NodeHandle],
) -> ShutdownReport:
    node_id = p2p.peer_id
    lag = LoopLagMonitor(threshold=config.loop_lag_threshold)
    manager = node_settings.build_manager(config, node_id)
    policy, certificate = node_settings.admission_for(config, node_id)
    gossip = GossipService(
        p2p,
        manager,
        node_settings.cluster_config_for(config),
        registry=registry,
        starved=lambda: lag.starved,
        admission=policy,
        certificate=certificate,
        tuning=GossipTuning(meet_links=config.meet_links),
    )
    for check in local_checks(config, stats or PsutilStats(), lag):
        manager.register(check)
    # Half the late-answer threshold within a ping's timeout: a lag that small already
    # makes a quick answer look late to the network score (LinkPinger.lagging).
    slow, within = p2p.cfg.ping_slow_answer / 2, p2p.cfg.ping_timeout
    p2p.pinger.lagging = lambda: lag.window.late_within(slow, within)
    # With an admission policy, strangers are neither named by our probes nor answered
    # (issue 12): only members of the cluster view are wanted.
    view = gossip.view
    wanted = (lambda peer: view.member(peer) is not None) if policy.enabled else None
    active, enhanced, responder = network_checks(config, p2p, wanted, view.wire_level)
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

    add_node_metrics(
        registry,
        manager,
        lag=lag,
        certificate=certificate,
        p2p=p2p,
        enhanced=enhanced,
        responder=responder,
    )
    shutdown = ShutdownManager(config.shutdown_timeout)
    # Readiness turns 503 at the very moment shutdown is asked for, before any phase runs.
    shutdown.on_request(lambda _reason: manager.begin_stopping())
    if config.shutdown_on_critical:

        def stop_on_critical(reason: str) -> None:
            shutdown.request(reason, failure=True)

        manager.set_shutdown_handler(stop_on_critical)
    app = create_app(manager, registry, token=config.health_token)
    add_json_route(app, "/health/summary", lambda: health_summary(manager, enhanced))
    add_cluster_routes(app, gossip)
    add_dashboard(app)

    async with trio.open_nursery() as nursery:
        await nursery.start(lag.run)
        await nursery.start(responder.run)
        manager_scope = await nursery.start(_cancellable, manager.run)
        http_port, http_done, http_stop = await start_http(nursery, app, config)
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
            nursery.start_soon(watch_signals, shutdown)
            shutdown.on_request(lambda _r: start_watchdog(config.shutdown_timeout + 10.0))
        task_status.started(
            NodeHandle(config, node_id, manager, shutdown, registry, app, http_port, p2p, gossip)
        )
        report = await shutdown.run()
        nursery.cancel_scope.cancel()
    if report.failure:
        log.error("node stopped because a critical check kept failing: %s", report.reason)
    return report


async def _cancellable(
    run: Callable[[], Awaitable[object]], *, task_status: TaskStatus[trio.CancelScope]
) -> None:
    with trio.CancelScope() as scope:
        await trio.lowlevel.checkpoint()
        task_status.started(scope)
        await run()


async def _drain(manager: CheckManager, config: NodeConfig) -> None:
    log.info(
        "node %s is stopping; readiness answers 503, draining for %gs",
        manager.node_id,
        config.drain_seconds,
    )
    await trio.sleep(config.drain_seconds)
