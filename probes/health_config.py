"""The enhanced checks' configuration: the reference's HealthConfig and its presets.

``DEFAULT_CONFIG`` is the reference's (production); ``DEVNET_CONFIG`` is built from it for
one to a few nodes on one machine, where isolation must degrade a node, not end it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

__all__ = ["DEFAULT_CONFIG", "DEVNET_CONFIG", "HealthConfig"]


@dataclass(frozen=True)
class HealthConfig:
    """The reference's HealthConfig (times in seconds), plus the knobs it leaves implicit."""

    # Reference defaults. Shorter intervals notice trouble sooner and cost a publish or a
    # DHT put per run; each probe's cost is bounded (k answers, <= 5 DHT reads).
    pubsub_probe_interval: float = 30.0
    dht_probe_interval: float = 60.0
    # The election-health check's (adapters.gossip builds it; adapters.node registers it
    # with these, or not at all when enable_election_probes is off).
    election_probe_interval: float = 15.0
    # How long a probe may take: the PubSub probe's wait for answers, the DHT probe's
    # whole put-and-read-back.
    pubsub_probe_timeout: float = 10.0
    dht_probe_timeout: float = 20.0
    election_probe_timeout: float = 5.0
    max_failed_probes: int = 3  # consecutive failures that take failure_factor to 0
    healthy_threshold: float = 0.95  # summary score bands
    degraded_threshold: float = 0.75  # also the pass mark of replication and tasks
    # Bounds the per-key replication status kept in HealthMetrics. The manager keeps its
    # own transition history with the same default.
    max_history_entries: int = 1000
    history_cleanup_interval: float = 3600.0  # unused: every window here is bounded
    enable_pubsub_probes: bool = True
    enable_dht_probes: bool = True
    enable_election_probes: bool = True
    enable_replication_probes: bool = True

    # Ours. The reference's example uses min_peers 3; 1 suits the small clusters we run
    # (a node with one live peer can still gossip), and 0 disables the requirement.
    min_peers: int = 1
    # Probes in the success-rate window: 20 is 10 min of PubSub probes at 30 s. Longer
    # remembers more, recovers slower.
    success_window: int = 20
    # Copies a probe record should have at most (Kademlia's k). The DHT probe puts each
    # record at 3 peers (probes.dht_probe.DEFAULT_REPLICAS), which is what is expected.
    replication_k: int = 20
    # Peers the replication check asks of those that took a record; the replicas found
    # among them are scaled up to that count. Asking all of them made the check O(N) per
    # node while records went to all k: at 20 nodes with 15 s probes it alone was 57 reads
    # a node every 15 s and the devnet never converged on two cores (2026-11-28).
    replication_sample: int = 5
    p2p_interval: float = 30.0
    replication_interval: float = 120.0
    task_interval: float = 30.0
    # The reference makes pubsub-enhanced, dht-enhanced and p2p-connectivity critical. A
    # one-node devnet fails them all, and critical failures end the node.
    critical_network_checks: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_interval", "_timeout")) and not value > 0:
                raise ValueError(f"{f.name} must be a positive number of seconds, got {value!r}")
        if not 0.0 <= self.degraded_threshold <= self.healthy_threshold <= 1.0:
            raise ValueError("need 0 <= degraded_threshold <= healthy_threshold <= 1")
        if min(self.max_failed_probes, self.success_window, self.replication_k) < 1 or (
            self.replication_sample < 1
        ):
            raise ValueError(
                "max_failed_probes, success_window, replication_k and replication_sample"
                " must be >= 1"
            )
        if self.min_peers < 0 or self.max_history_entries < 1:
            raise ValueError("min_peers must be >= 0 and max_history_entries >= 1")


DEFAULT_CONFIG = HealthConfig()
# One to a few nodes on one machine: nothing to be cut off from, so isolation degrades the
# node instead of ending it, and probes run often enough to watch them work.
DEVNET_CONFIG = replace(
    DEFAULT_CONFIG,
    pubsub_probe_interval=10.0,
    dht_probe_interval=15.0,
    min_peers=0,
    critical_network_checks=False,
)
