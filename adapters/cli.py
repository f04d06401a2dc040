"""``chorus-health``: run one health node, or ask a running one (members, checks, status).

Without a command it runs the node. Exit codes: 0 after a clean shutdown (SIGTERM /
Ctrl-C), 1 when shutdown overran its timeout or a second signal forced it, 2 for invalid
configuration, 3 when a critical check kept failing and the node shut itself down. The
commands' exit codes are adapters/members_cli.py's.

The node's modules (libp2p, hypercorn) are imported only to run a node: the operator's
commands then start in a fraction of the time.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from adapters import import_shield, members_cli
from mesh.config import NodeConfig, __version__
from mesh.config_options import OPTIONS
from mesh.config_sources import load_config
from mesh.errors import ConfigError

if TYPE_CHECKING:
    from mesh.shutdown import ShutdownReport

EXIT_CONFIG = 2  # adapters.node_process.EXIT_CONFIG, without importing the node to say it

DESCRIPTION = """\
Run a CHORUS health node, or ask a running one (see the commands below).

A node is a libp2p host (Noise, yamux, TCP) that joins its peers through --bootstrap-peers.
It runs local checks (disk, memory, CPU, event-loop lag) and network probes (GossipSub
round trips, DHT put/get, connectivity, admin election) on a schedule, rolls them up into a
status and score, and gossips them as signed digests. From its peers' digests it keeps a
signed cluster view: every member alive, suspect, dead or left, and the elected admin.
It serves all this over HTTP: Kubernetes probes, JSON endpoints, a dashboard and Prometheus
metrics.

Every option can also be set with an environment variable (shown in brackets) or in a TOML
file given with --config / CHORUS_CONFIG, using the option's name with underscores
(health_port = 8081). Flags beat environment variables, which beat the file.
"""

EPILOG = """\
examples:
  chorus-health --bootstrap-peers /ip4/10.0.0.5/tcp/9000/p2p/12D3KooW...   join a mesh
  chorus-health members --node http://10.0.0.5:8081    who that node sees, and how
  chorus-health status && echo serving                 the local node, for scripts
  The commands take the node's token as the node takes it: --health-token-file FILE
  (or --health-token) after the command, or CHORUS_HEALTH_TOKEN[_FILE].

endpoints:
  /health          overall status (200 healthy/degraded, 503 otherwise)
  /health/ready    readiness probe          /health/live    liveness probe
  /health/checks   every check, detailed    /health/history check state changes
  /health/cluster  the signed cluster view  /health/cluster/PEER   one member
  /health/summary  scores and key metrics   /metrics        Prometheus metrics
  /                the dashboard: the cluster view as a live table
  with --health-token, /health/checks, history, summary and cluster need
  Authorization: Bearer TOKEN (/health then redacts its check messages)

exit codes, running a node: 0 clean shutdown, 1 forced shutdown, 2 bad configuration,
            3 stopped because a critical check kept failing
exit codes, commands: 0 ok, 1 not serving (status), 2 bad usage, 3 node unreachable,
            4 bad or missing token, 5 not a CHORUS health node's answer
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chorus-health",
        usage="chorus-health [OPTION ...]           run a node\n"
        "       chorus-health COMMAND [OPTION ...]   ask a running node (members, checks, status)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file with options [CHORUS_CONFIG]")
    parser.add_argument("--version", action="version", version=f"chorus-health {__version__}")
    defaults = NodeConfig()
    for option in OPTIONS:
        default = getattr(defaults, option.name)
        if isinstance(default, tuple):
            default = ",".join(default) or "none"
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar,
            default=None,
            help=f"{option.help} [{option.env}] (default: {default})",
        )
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands",
        description="without one, chorus-health runs a node with the options above",
    )
    members_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    args = dict(vars(namespace))
    command = args.pop("command", None)
    config_file = args.pop("config")
    if command is not None:
        given = [o.flag for o in OPTIONS if args.get(o.name) is not None]
        if config_file or given:
            # They would be silently ignored: the command asks a node, it runs none.
            flags = " ".join(["--config"] * bool(config_file) + given)
            parser.error(
                f"node options ({flags}) go only without a command;"
                f" see chorus-health {command} --help"
            )
        return members_cli.run_command(namespace)
    return _run_node(args, config_file)


def _run_node(args: dict[str, object], config_file: str | None) -> int:
    import trio
    from prometheus_client import disable_created_metrics

    from adapters.logs import setup_logging
    from adapters.node_process import exit_code

    try:
        config = load_config(args, config_file=config_file)
    except ConfigError as exc:
        print(f"chorus-health: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log_format, config.log_level)
    # Before libp2p is imported: its unused QUIC, AutoTLS and mDNS libraries cost 13 MiB.
    import_shield.shield()
    # The *_created series double the exposition for no use to alerting rules.
    # (prometheus-client leaves this function unannotated, which mypy --strict will not call.)
    cast(Callable[[], None], disable_created_metrics)()
    try:
        report = trio.run(_run, config)
    except ConfigError as exc:
        print(f"chorus-health: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return exit_code(report)


async def _run(config: NodeConfig) -> ShutdownReport:
    from adapters.heap_freeze import freeze_imported_heap
    from adapters.node import run_node

    freeze_imported_heap()  # before the host starts: no connection is frozen
    try:
        return await run_node(config, handle_signals=True)
    except BaseExceptionGroup as group:
        # Start-up errors arrive wrapped by the nursery; surface a lone ConfigError as itself.
        configs = group.subgroup(ConfigError)
        if configs is not None:
            raise _first_leaf(configs) from None
        raise


def _first_leaf(group: BaseExceptionGroup[ConfigError]) -> ConfigError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
