"""Node configuration: one frozen dataclass, each field with its default and trade-off.

Where the values come from is ``mesh.config_sources`` (flags, ``CHORUS_*`` environment
variables, a TOML file); every option is described once, in ``mesh.config_options``, and
each value is checked by its parser in ``mesh.config_parsers``. The dataclass itself is plain
data, so the layers that only read a configuration need none of that.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

__all__ = ["NodeConfig", "__version__"]


def _package_version() -> str:
    """One version string, the installed package's (pyproject.toml), as "v<version>"."""
    try:
        return "v" + importlib.metadata.version("chorus-health")
    except importlib.metadata.PackageNotFoundError:  # run from a bare source tree
        return "v0.0.0+unknown"


__version__ = _package_version()


@dataclass(frozen=True)
class NodeConfig:
    # HTTP: 8081 is CHORUS's health port. Loopback by default so a node started by hand is
    # not reachable from elsewhere; containers set 0.0.0.0.
    health_host: str = "127.0.0.1"
    health_port: int = 8081
    # The host peers and the dashboard should use to reach our HTTP endpoints, when
    # health_host is a wildcard such as 0.0.0.0 (in Kubernetes: the pod IP). None: health_host.
    advertise_host: str | None = None
    # Bearer token guarding the detailed endpoints (/health/checks, history, cluster view).
    # Liveness, readiness, /health and /metrics stay open for probes and scrapers.
    health_token: str | None = None
    # A file holding the token instead (a mounted Kubernetes secret): a flag's value shows
    # in ps, a file's does not. Read once at start; surrounding whitespace is ignored.
    health_token_file: str | None = None
    # libp2p: 9000 is CHORUS's P2P port; 0 picks a free port (tests, devnet).
    p2p_host: str = "127.0.0.1"
    p2p_port: int = 9000
    bootstrap_peers: tuple[str, ...] = ()
    # Network probe timing: "production" uses the reference's HealthConfig defaults;
    # "devnet" probes more often and keeps an isolated node alive (non-critical network
    # checks, no minimum peer count), for a few nodes on one machine.
    profile: str = "production"
    # Connected peers below which p2p-connectivity fails (the reference's example uses 3;
    # 1 suits small clusters; 0 disables the requirement).
    min_peers: int = 1
    # Connections up to which we dial every member we hear of once (issue 13): with a
    # link of our own to a member, its crash is a refused dial-back within a second, not
    # a suspicion waited out. Each link costs lazy gossip; 0 keeps to the bootstrap peers.
    meet_links: int = 32
    # Overrides the interval of every network probe and check (seconds), whatever the
    # profile says; None keeps the profile's.
    probe_interval: float | None = None
    # The election-health check (the reference's ElectionProbeInterval, ElectionProbeTimeout
    # and EnableElectionProbes). Interval in seconds; None: the reference's 15 s, or
    # probe_interval when that is set. Shorter notices a lost admin sooner; the check only
    # reads the cluster view, so it costs next to nothing. The timeout (5 s) bounds one run.
    # Disabled, the check is not registered at all: no result, no score, no election
    # fields in the summary (the admin is still elected and shown in the cluster view).
    election_probe_interval: float | None = None
    election_probe_timeout: float = 5.0
    enable_election_probes: bool = True
    # Where the node keeps its identity key (so its peer ID survives restarts).
    data_dir: str = ".chorus-health"
    node_version: str = __version__
    log_format: str = "text"
    log_level: str = "info"
    # Flap control: failures in a row before a check turns failing (the reference's
    # MaxFailedProbes) and passes in a row before it turns passing again. Higher values mean
    # fewer false alarms and slower detection.
    fail_after: int = 3
    pass_after: int = 2
    history_size: int = 1000  # transitions kept (the reference's MaxHistoryEntries)
    # A critical check failing fail_after times in a row starts a graceful shutdown, which
    # must finish within shutdown_timeout seconds or the process is forced out.
    shutdown_on_critical: bool = True
    shutdown_timeout: float = 30.0
    # Seconds to keep answering (readiness 503) after shutdown begins, before anything
    # stops: Kubernetes needs a moment to take the pod out of its Service endpoints.
    drain_seconds: float = 2.0
    # Local checks (fractions of capacity at which the check fails).
    disk_path: str = "."
    disk_threshold: float = 0.90
    memory_threshold: float = 0.85
    cpu_threshold: float = 0.90
    # Seconds late the event loop may wake before the node calls itself starved.
    loop_lag_threshold: float = 0.5
    checks_disabled: tuple[str, ...] = field(default=())
    # Admission (mesh/admission.py): whose statements may enter the cluster view. Both
    # lists empty (the default) leaves the cluster open to any peer that can sign. Peers on
    # admit_peers need nothing more; any other peer needs a member certificate signed by one
    # of authority_keys (base64 Ed25519 public keys; list old and new while rotating).
    admit_peers: tuple[str, ...] = ()
    authority_keys: tuple[str, ...] = ()
    # This node's own certificate file (chorus-authority issue), presented to peers that
    # require one; None: we present none, and only peers without a policy, or that list us,
    # admit us.
    member_certificate: str | None = None
