"""Every node option, described once: its parser, help text, flag and environment name.

The argparse flags (``adapters.cli``), the environment names and the TOML keys
(``mesh.config_sources``) are all derived from ``OPTIONS``, so they cannot drift apart; the
table must list every field of ``NodeConfig``, no more (checked at import).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh import config_parsers as parsers
from mesh.config import NodeConfig

__all__ = ["BY_NAME", "OPTIONS", "Option"]


@dataclass(frozen=True)
class Option:
    name: str  # the NodeConfig field
    parse: Callable[[object], Any]
    help: str
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CHORUS_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("health_host", parsers.text, "address the HTTP endpoints listen on", "HOST"),
    Option(
        "health_port",
        parsers.port,
        "HTTP port for /health, /metrics, ... (0 = any free port)",
        "PORT",
    ),
    Option(
        "advertise_host",
        parsers.optional_text,
        "host other nodes should use for our HTTP endpoints (default: --health-host)",
        "HOST",
    ),
    Option(
        "health_token",
        parsers.optional_text,
        "bearer token required by the detailed endpoints (/health/checks, history, cluster)",
        "TOKEN",
    ),
    Option(
        "health_token_file",
        parsers.optional_text,
        "file holding that token (a mounted secret; a flag's value shows in ps)",
        "FILE",
    ),
    Option("p2p_host", parsers.text, "address libp2p listens on", "HOST"),
    Option("p2p_port", parsers.port, "libp2p TCP port (0 = any free port)", "PORT"),
    Option(
        "bootstrap_peers",
        parsers.string_list,
        "comma-separated multiaddrs of peers to join, e.g. /ip4/127.0.0.1/tcp/9000/p2p/12D3...",
        "ADDRS",
    ),
    Option(
        "profile",
        parsers.choice("production", "devnet"),
        "probe timing preset: production (reference defaults) or devnet",
        "NAME",
    ),
    Option(
        "min_peers",
        parsers.non_negative_int,
        "connected peers below which p2p-connectivity fails",
        "N",
    ),
    Option(
        "meet_links",
        parsers.non_negative_int,
        "connections up to which every member heard of is dialled once (0 = bootstrap only)",
        "N",
    ),
    Option(
        "probe_interval",
        parsers.optional_positive_float,
        "seconds between network probes, overriding the profile",
        "SECONDS",
    ),
    Option(
        "election_probe_interval",
        parsers.optional_positive_float,
        "seconds between election-health checks (default 15, or --probe-interval)",
        "SECONDS",
    ),
    Option(
        "election_probe_timeout",
        parsers.positive_float,
        "seconds one election-health check may take",
        "SECONDS",
    ),
    Option(
        "enable_election_probes",
        parsers.boolean,
        "run the election-health check (true/false)",
        "BOOL",
    ),
    Option("data_dir", parsers.text, "directory for the node's identity key", "DIR"),
    Option("node_version", parsers.text, "version string this node reports", "VERSION"),
    Option(
        "log_format",
        parsers.choice("text", "json"),
        "log format: text or json (one object per line)",
        "FORMAT",
    ),
    Option("log_level", parsers.choice("debug", "info", "warning", "error"), "log level", "LEVEL"),
    Option(
        "fail_after",
        parsers.positive_int,
        "consecutive failures before a check turns failing (MaxFailedProbes)",
        "N",
    ),
    Option(
        "pass_after",
        parsers.positive_int,
        "consecutive passes before a failing check turns passing",
        "N",
    ),
    Option("history_size", parsers.positive_int, "check transitions kept in history", "N"),
    Option(
        "shutdown_on_critical",
        parsers.boolean,
        "shut down gracefully when a critical check keeps failing (true/false)",
        "BOOL",
    ),
    Option(
        "shutdown_timeout",
        parsers.positive_float,
        "seconds a graceful shutdown may take before the process is forced out",
        "SECONDS",
    ),
    Option(
        "drain_seconds",
        parsers.non_negative_float,
        "seconds to keep serving (readiness 503) after shutdown begins",
        "SECONDS",
    ),
    Option("disk_path", parsers.text, "path whose filesystem the disk check watches", "PATH"),
    Option(
        "disk_threshold",
        parsers.fraction,
        "disk usage fraction at which disk-space fails",
        "FRACTION",
    ),
    Option(
        "memory_threshold",
        parsers.fraction,
        "memory usage fraction at which memory fails",
        "FRACTION",
    ),
    Option(
        "cpu_threshold",
        parsers.fraction,
        "CPU usage fraction at which resource-health fails",
        "FRACTION",
    ),
    Option(
        "loop_lag_threshold",
        parsers.positive_float,
        "seconds of event-loop lag at which the node calls itself starved",
        "SECONDS",
    ),
    Option(
        "checks_disabled",
        parsers.string_list,
        "comma-separated names of checks to disable",
        "NAMES",
    ),
    Option(
        "admit_peers",
        parsers.peer_ids,
        "comma-separated peer IDs admitted to the cluster view without a certificate",
        "PEER_IDS",
    ),
    Option(
        "authority_keys",
        parsers.public_keys,
        "comma-separated base64 Ed25519 public keys whose member certificates admit a peer",
        "KEYS",
    ),
    Option(
        "member_certificate",
        parsers.optional_text,
        "this node's member certificate file (from chorus-authority issue)",
        "FILE",
    ),
)
BY_NAME = {option.name: option for option in OPTIONS}
assert set(BY_NAME) == {f.name for f in dataclasses.fields(NodeConfig)}, "OPTIONS out of sync"
