"""Node configuration: one frozen dataclass, loaded from flags, environment and a TOML file.

Precedence, strongest first: command-line flags, ``CHORUS_*`` environment variables, the
TOML file (``--config`` or ``CHORUS_CONFIG``), the defaults below. Every option is described
once, in ``OPTIONS``; the argparse flags, environment names and TOML keys are derived from
it, so they cannot drift apart. Any invalid value raises ``ConfigError`` with one line that
names the option and where the value came from; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.admission import format_public_key, is_peer_id, parse_public_key
from mesh.errors import ConfigError


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


def _port(raw: object) -> int:
    value = _integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (0-65535)")
    return value


def _integer(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    raise ValueError(f"expected an integer, got {raw!r}")


def _non_negative_int(raw: object) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError(f"must be zero or more, got {value}")
    return value


def _positive_int(raw: object) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _number(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def _non_negative_float(raw: object) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError(f"must be zero or more, got {raw!r}")
    return value


def _positive_float(raw: object) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError(f"must be a positive number, got {raw!r}")
    return value


def _optional_positive_float(raw: object) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    return _positive_float(raw)


def _fraction(raw: object) -> float:
    value = _positive_float(raw)
    if value > 1:
        raise ValueError(f"must be a fraction in (0, 1], got {raw!r}")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"expected a non-empty string, got {raw!r}")
    return raw.strip()


def _optional_text(raw: object) -> str | None:
    if isinstance(raw, str) and not raw.strip():
        return None
    return _text(raw)


def _string_list(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list | tuple):
        if not all(isinstance(item, str) for item in raw):
            raise ValueError(f"expected a list of strings, got {raw!r}")
        items = [item.strip() for item in raw]
    else:
        raise ValueError(f"expected a comma-separated list, got {raw!r}")
    return tuple(item for item in items if item)


def _peer_ids(raw: object) -> tuple[str, ...]:
    peers = _string_list(raw)
    for peer in peers:
        if not is_peer_id(peer):
            raise ValueError(f"{peer[:60]!r} is not a libp2p peer ID (base58, like 12D3KooW...)")
    return tuple(dict.fromkeys(peers))  # without repeats, in the order given


def _public_keys(raw: object) -> tuple[str, ...]:
    keys = []
    for index, text in enumerate(_string_list(raw), start=1):
        try:
            # Kept as canonical base64 text, so the config stays plain data; decoded again
            # by mesh.admission.policy_from_config.
            keys.append(format_public_key(parse_public_key(text)))
        except ConfigError as exc:
            raise ValueError(f"key #{index}: {exc}") from None
    return tuple(dict.fromkeys(keys))


def _choice(*allowed: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        value = _text(raw).lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


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
    Option("health_host", _text, "address the HTTP endpoints listen on", "HOST"),
    Option(
        "health_port", _port, "HTTP port for /health, /metrics, ... (0 = any free port)", "PORT"
    ),
    Option(
        "advertise_host",
        _optional_text,
        "host other nodes should use for our HTTP endpoints (default: --health-host)",
        "HOST",
    ),
    Option(
        "health_token",
        _optional_text,
        "bearer token required by the detailed endpoints (/health/checks, history, cluster)",
        "TOKEN",
    ),
    Option(
        "health_token_file",
        _optional_text,
        "file holding that token (a mounted secret; a flag's value shows in ps)",
        "FILE",
    ),
    Option("p2p_host", _text, "address libp2p listens on", "HOST"),
    Option("p2p_port", _port, "libp2p TCP port (0 = any free port)", "PORT"),
    Option(
        "bootstrap_peers",
        _string_list,
        "comma-separated multiaddrs of peers to join, e.g. /ip4/127.0.0.1/tcp/9000/p2p/12D3...",
        "ADDRS",
    ),
    Option(
        "profile",
        _choice("production", "devnet"),
        "probe timing preset: production (reference defaults) or devnet",
        "NAME",
    ),
    Option(
        "min_peers", _non_negative_int, "connected peers below which p2p-connectivity fails", "N"
    ),
    Option(
        "meet_links",
        _non_negative_int,
        "connections up to which every member heard of is dialled once (0 = bootstrap only)",
        "N",
    ),
    Option(
        "probe_interval",
        _optional_positive_float,
        "seconds between network probes, overriding the profile",
        "SECONDS",
    ),
    Option(
        "election_probe_interval",
        _optional_positive_float,
        "seconds between election-health checks (default 15, or --probe-interval)",
        "SECONDS",
    ),
    Option(
        "election_probe_timeout",
        _positive_float,
        "seconds one election-health check may take",
        "SECONDS",
    ),
    Option(
        "enable_election_probes",
        _boolean,
        "run the election-health check (true/false)",
        "BOOL",
    ),
    Option("data_dir", _text, "directory for the node's identity key", "DIR"),
    Option("node_version", _text, "version string this node reports", "VERSION"),
    Option(
        "log_format",
        _choice("text", "json"),
        "log format: text or json (one object per line)",
        "FORMAT",
    ),
    Option("log_level", _choice("debug", "info", "warning", "error"), "log level", "LEVEL"),
    Option(
        "fail_after",
        _positive_int,
        "consecutive failures before a check turns failing (MaxFailedProbes)",
        "N",
    ),
    Option(
        "pass_after", _positive_int, "consecutive passes before a failing check turns passing", "N"
    ),
    Option("history_size", _positive_int, "check transitions kept in history", "N"),
    Option(
        "shutdown_on_critical",
        _boolean,
        "shut down gracefully when a critical check keeps failing (true/false)",
        "BOOL",
    ),
    Option(
        "shutdown_timeout",
        _positive_float,
        "seconds a graceful shutdown may take before the process is forced out",
        "SECONDS",
    ),
    Option(
        "drain_seconds",
        _non_negative_float,
        "seconds to keep serving (readiness 503) after shutdown begins",
        "SECONDS",
    ),
    Option("disk_path", _text, "path whose filesystem the disk check watches", "PATH"),
    Option(
        "disk_threshold", _fraction, "disk usage fraction at which disk-space fails", "FRACTION"
    ),
    Option(
        "memory_threshold", _fraction, "memory usage fraction at which memory fails", "FRACTION"
    ),
    Option(
        "cpu_threshold", _fraction, "CPU usage fraction at which resource-health fails", "FRACTION"
    ),
    Option(
        "loop_lag_threshold",
        _positive_float,
        "seconds of event-loop lag at which the node calls itself starved",
        "SECONDS",
    ),
    Option("checks_disabled", _string_list, "comma-separated names of checks to disable", "NAMES"),
    Option(
        "admit_peers",
        _peer_ids,
        "comma-separated peer IDs admitted to the cluster view without a certificate",
        "PEER_IDS",
    ),
    Option(
        "authority_keys",
        _public_keys,
        "comma-separated base64 Ed25519 public keys whose member certificates admit a peer",
        "KEYS",
    ),
    Option(
        "member_certificate",
        _optional_text,
        "this node's member certificate file (from chorus-authority issue)",
        "FILE",
    ),
)
_BY_NAME = {option.name: option for option in OPTIONS}
assert set(_BY_NAME) == {f.name for f in dataclasses.fields(NodeConfig)}, "OPTIONS out of sync"


def load_config(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> NodeConfig:
    """Build a NodeConfig; ``flags`` holds only the options given on the command line."""
    environ = os.environ if environ is None else environ
    merged: dict[str, object] = {}
    sources: dict[str, str] = {}
    path = config_file or environ.get("CHORUS_CONFIG")
    if path:
        for key, value in _read_toml(path).items():
            merged[key] = value
            sources[key] = f"{key} in {path}"
    for option in OPTIONS:
        if option.env in environ:
            merged[option.name] = environ[option.env]
            sources[option.name] = f"environment variable {option.env}"
    for name, value in flags.items():
        if value is not None:
            merged[name] = value
            sources[name] = f"flag {_BY_NAME[name].flag}"
    parsed: dict[str, Any] = {}
    for name, raw in merged.items():
        try:
            parsed[name] = _BY_NAME[name].parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {sources[name]}: {exc}") from None
    token_file = parsed.get("health_token_file")
    if token_file is not None:
        if parsed.get("health_token") is not None:
            raise ConfigError(
                f"give the token once: {sources['health_token']} and"
                f" {sources['health_token_file']} are both set"
            )
        parsed["health_token"] = read_token_file(token_file, sources["health_token_file"])
    return NodeConfig(**parsed)


MAX_TOKEN_BYTES = 4096


def read_token_file(path: str, source: str) -> str:
    """The bearer token in the file at ``path`` (named ``source`` in errors), as the node and
    ``chorus-health members`` read it: UTF-8, stripped, at most MAX_TOKEN_BYTES, not empty.
    Raises ConfigError."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"invalid {source}: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_TOKEN_BYTES:
        raise ConfigError(f"invalid {source}: {path} is over {MAX_TOKEN_BYTES} bytes")
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"invalid {source}: {path} is not UTF-8 text") from None
    if not token:
        raise ConfigError(f"invalid {source}: {path} is empty")
    if not is_token_text(token):
        # Never the token itself in the message: it ends up in logs.
        raise ConfigError(
            f"invalid {source}: the token in {path} must be visible ASCII, one line, no spaces"
        )
    return token


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP, no port) means this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_token_text(token: str) -> bool:
    """Whether ``token`` can travel as a bearer token: visible ASCII only (an HTTP header
    refuses control characters, and a space would split it)."""
    return all("!" <= c <= "~" for c in token)


def _read_toml(path: str) -> dict[str, object]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown option(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(_BY_NAME))})"
        )
    return data
