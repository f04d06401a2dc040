"""The simulation toolkit's settings (re-exported by :mod:`devnet.testing`): the compact
node configuration (:func:`sim_config`), the wait bounds and their scale
(:func:`time_scale`), the event-loop limits behind the "machine too slow" verdict.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from mesh.config import NodeConfig
from mesh.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


# The active network probes: each one publishes on a topic every node reads (or puts a DHT
# record on up to 20 peers), so with N nodes a probe round costs every node N deliveries.
# Off in the compact configuration; a scenario that tests them switches them on.
PROBE_CHECKS: tuple[str, ...] = (
    "pubsub-active-probe",
    "dht-active-probe",
    "pubsub-enhanced",
    "dht-enhanced",
    "replication-health",
    "task-manager",
)

# Seconds a wait may take by default, before time_scale(): generous, because the
# success path returns as soon as the condition holds and a shared 2-core machine is slow.
DEFAULT_WAIT = 30.0
DEFAULT_WAIT_PER_NODE = 1.5
# In-process nodes start in a few hundred milliseconds on an idle machine; a process node
# needs its Python start-up and imports too (1-3 s idle, much more when the machine is busy).
START_BUDGET = 30.0
PROCESS_START_BUDGET = 60.0
# The shared event loop's lag at which a scenario's timing no longer means anything: the
# nodes' own loop-lag threshold (NodeConfig.loop_lag_threshold), beyond which every
# in-process node calls itself starved.
DEFAULT_LAG_LIMIT = 0.5
# A loop whose process used more than BUSY_LIMIT of a core over BUSY_WINDOW seconds is
# saturated: its work queues grow, and with them every latency (see _LagMonitor).
BUSY_LIMIT = 0.9
# libp2p ping timeout of in-process nodes (py-libp2p's own default; the product's is
# P2PConfig.ping_timeout). N nodes share one event loop: on a busy machine the few round
# trips of one ping can take seconds of scheduling, and a single failed ping suspects the
# peer, so a short timeout turns a slow machine into a storm of false suspicions. Process
# nodes keep the product's settings.
INPROCESS_PING_TIMEOUT = 5.0
# Seconds between two looks at the views while waiting: POLL, or POLL_PER_NODE per live
# node if longer (reading 20 views costs the shared loop about 14 ms).
POLL = 0.25
POLL_PER_NODE = 0.02


def time_scale() -> float:
    """``CHORUS_MESH_TIME_SCALE`` (default 1): multiplies every default wait bound."""
    raw = os.environ.get("CHORUS_MESH_TIME_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"CHORUS_MESH_TIME_SCALE={raw!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"CHORUS_MESH_TIME_SCALE={raw!r} must be positive")
    return value


def _lag_limit_from_env() -> float:
    raw = os.environ.get("CHORUS_MESH_LAG_LIMIT")
    if raw is None:
        return DEFAULT_LAG_LIMIT
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"CHORUS_MESH_LAG_LIMIT={raw!r} is not a number") from None


def sim_config(**changes: Any) -> NodeConfig:
    """The compact node configuration of a simulation; ``changes`` replace fields.

    Ports 0 (any free port), the devnet profile (cluster presets in
    ``mesh/cluster_config.py``: a 0.5 s gossip heartbeat stretched to keep the whole
    cluster at a few messages a second; suspicion from 2 s), network probes every 30 s
    and the active probes off (:data:`PROBE_CHECKS`), no drain on shutdown. The loop-lag
    threshold stays the product's 0.5 s: a starved simulation should look starved.
    Nodes do not meet the members they hear of (``meet_links=0``): the links are the
    topology's, so a test's sparse ring stays sparse.
    """
    base = NodeConfig(
        health_port=0,
        p2p_port=0,
        profile="devnet",
        probe_interval=30.0,
        drain_seconds=0.0,
        shutdown_timeout=10.0,
        checks_disabled=PROBE_CHECKS,
        log_level="warning",
        meet_links=0,
    )
    return replace(base, **changes)
