"""Each part's configuration, derived from the node's own (:class:`~mesh.config.NodeConfig`).

The profile (production or devnet) picks the presets; the node's settings go into them.
``devnet/costinst`` replaces ``p2p_config``, ``cluster_config_for`` and ``DEFAULT_CONFIG``
here to measure other settings, which is why ``adapters.node`` calls them through this
module rather than importing them by name.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from adapters.dht_record_guard import DEFAULT_RECORD_TTL
from adapters.p2p_config import P2PConfig, P2PError
from mesh import cluster_config as cluster_presets
from mesh.admission import AdmissionPolicy, AdmissionReason, policy_from_config
from mesh.admission_formats import parse_certificate
from mesh.certificate import MemberCertificate
from mesh.cluster_config import ClusterConfig
from mesh.config import NodeConfig
from mesh.errors import ConfigError
from mesh.flap import Thresholds
from mesh.manager import CheckManager
from probes.health_config import DEFAULT_CONFIG, DEVNET_CONFIG, HealthConfig

__all__ = [
    "admission_for",
    "build_manager",
    "cluster_config_for",
    "health_config_for",
    "p2p_config",
]

# The node runner logs under one name, whichever part of it speaks.
log = logging.getLogger("adapters.node")


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
