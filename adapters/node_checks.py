"""The checks a node registers by itself: local ones, the network probes and which names
exist (so that a typo in ``checks_disabled`` fails at start)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.election_check import ELECTION_CHECK
from adapters.libp2p_link import probe_for_node
from adapters.node_settings import health_config_for
from adapters.p2p_node import P2PNode
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.manager import CheckManager
from mesh.model import HealthCheck
from probes.dht_probe import ACTIVE_DHT_CHECK, DHTProbe, active_dht_check
from probes.enhanced import (
    DHT_ENHANCED,
    P2P_CONNECTIVITY,
    PUBSUB_ENHANCED,
    REPLICATION_HEALTH,
    TASK_MANAGER,
    EnhancedHealthChecks,
)
from probes.local import (
    DISK_SPACE,
    MEMORY,
    RESOURCE_HEALTH,
    disk_space_check,
    memory_check,
    resource_health_check,
)
from probes.loop_lag import EVENT_LOOP_LAG, LoopLagMonitor, event_loop_lag_check
from probes.probe_responder import ProbeResponder
from probes.pubsub_probe import ACTIVE_PUBSUB_CHECK, active_pubsub_check
from probes.system_stats import SystemStats

__all__ = [
    "BUILT_IN_CHECKS",
    "NETWORK_CHECKS",
    "NETWORK_START_DELAY",
    "check_disabled_names",
    "local_checks",
    "network_checks",
    "share_probes",
]

# Network checks first run this long after start: bootstrap dials take milliseconds on a
# LAN, GossipSub learns its peers' subscriptions within a heartbeat (1 s).
NETWORK_START_DELAY = 2.0


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
    config: NodeConfig,
    p2p: P2PNode,
    wanted: Callable[[str], bool] | None = None,
    wire_level: Callable[[str], int] | None = None,
) -> tuple[list[HealthCheck], EnhancedHealthChecks, ProbeResponder]:
    """The reference's active probes and enhanced checks, on this node's libp2p host.
    ``wanted``: the peers the PubSub probe names first and answers at all (None: any);
    ``wire_level``: what a peer reads (the view's word), for the probe's wire version."""
    health_config = health_config_for(config)
    probe, responder = probe_for_node(p2p, wanted=wanted, wire_level=wire_level)
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
