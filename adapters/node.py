"""Assemble and run one health node inside a single ``trio.run``.

``run_node`` is ``nursery.start``-able: it reports a ``NodeHandle`` (with the HTTP port
actually bound, useful with port 0) once the endpoints answer, and returns the shutdown
report when the node has stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry
from quart_trio import QuartTrio

from adapters.http_app import create_app
from adapters.metrics import HealthMetrics, gauge_callback
from adapters.system_stats import PsutilStats, SystemStats
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.flap import Thresholds
from mesh.manager import CheckManager
from mesh.model import HealthCheck
from mesh.shutdown import Component, Phase, ShutdownManager, ShutdownReport
from probes.local import disk_space_check, memory_check, resource_health_check
from probes.loop_lag import LoopLagMonitor, event_loop_lag_check

log = logging.getLogger("chorus.health.node")

# Exit codes of the process (documented in the README).
EXIT_CLEAN = 0
EXIT_FORCED = 1
EXIT_CONFIG = 2
EXIT_CRITICAL = 3


@dataclass
class NodeHandle:
    config: NodeConfig
    node_id: str
    manager: CheckManager
    shutdown: ShutdownManager
    registry: CollectorRegistry
    app: QuartTrio
    http_port: int

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


def build_manager(config: NodeConfig, node_id: str, checks: list[HealthCheck]) -> CheckManager:
    manager = CheckManager(
        node_id=node_id,
        version=config.node_version,
        thresholds=Thresholds(fail_after=config.fail_after, pass_after=config.pass_after),
        history_size=config.history_size,
    )
    known = {check.name for check in checks}
    unknown = sorted(set(config.checks_disabled) - known)
    if unknown:
        raise ConfigError(
            f"checks_disabled names unknown check(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(known))})"
        )
    for check in checks:
        check.enabled = check.enabled and check.name not in config.checks_disabled
        manager.register(check)
    return manager


async def run_node(
    config: NodeConfig,
    *,
    handle_signals: bool = False,
    stats: SystemStats | None = None,
    extra_checks: Sequence[HealthCheck] = (),
    task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
) -> ShutdownReport:
    node_id = socket.gethostname()
    lag = LoopLagMonitor(threshold=config.loop_lag_threshold)
    checks = local_checks(config, stats or PsutilStats(), lag) + list(extra_checks)
    manager = build_manager(config, node_id, checks)
    registry = CollectorRegistry()
    HealthMetrics(registry, manager)
    gauge_callback(
        registry,
        "chorus_event_loop_lag_seconds",
        "Largest event-loop wake-up delay seen recently.",
        lambda: lag.max_lag,
    )
    shutdown = ShutdownManager(config.shutdown_timeout)
    # Readiness turns 503 at the very moment shutdown is asked for, before any phase runs.
    shutdown.on_request(lambda _reason: manager.begin_stopping())
    if config.shutdown_on_critical:
        manager.set_shutdown_handler(partial(shutdown.request, failure=True))
    app = create_app(manager, registry, token=config.health_token)

    async with trio.open_nursery() as nursery:
        await nursery.start(lag.run)
        manager_scope = await nursery.start(_cancellable, manager.run)
        http_port, http_done, http_stop = await _start_http(nursery, app, config)
        log.info(
            "node %s serving health endpoints on http://%s:%d",
            node_id,
            config.health_host,
            http_port,
        )

        async def stop_manager() -> None:
            manager_scope.cancel()

        async def stop_http() -> None:
            http_stop.set()
            await http_done.wait()

        shutdown.register(Component("health-manager", stop_manager, priority=10))
        # HTTP goes last so probes keep seeing 503 "stopping" while the rest winds down.
        shutdown.register(Component("health-http", stop_http, priority=90, timeout=5.0))
        shutdown.add_hook(Phase.PRE_SHUTDOWN, "drain", partial(_drain, manager, config))
        if handle_signals:
            nursery.start_soon(_watch_signals, shutdown)
            shutdown.on_request(lambda _r: _start_watchdog(config.shutdown_timeout + 5.0))
        task_status.started(
            NodeHandle(config, node_id, manager, shutdown, registry, app, http_port)
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
        logging.getLogger("chorus.health.node").critical(
            "shutdown still running after %.0fs; forcing exit", seconds
        )
        os._exit(EXIT_FORCED)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
