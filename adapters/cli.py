"""``chorus-health``: run one health node.

Exit codes: 0 after a clean shutdown (SIGTERM / Ctrl-C), 1 when shutdown overran its
timeout or a second signal forced it, 2 for invalid configuration, 3 when a critical check
kept failing and the node shut itself down.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio
from prometheus_client import disable_created_metrics

from adapters.logs import setup_logging
from adapters.node import EXIT_CONFIG, exit_code, run_node
from mesh.config import OPTIONS, NodeConfig, __version__, load_config
from mesh.errors import ConfigError
from mesh.shutdown import ShutdownReport

DESCRIPTION = """\
Run a CHORUS health node: local checks (disk, memory, CPU, event-loop lag) on a schedule,
rolled up into a status and score, served over HTTP for Kubernetes probes and Prometheus.

Every option can also be set with an environment variable (shown in brackets) or in a TOML
file given with --config / CHORUS_CONFIG, using the option's name with underscores
(health_port = 8081). Flags beat environment variables, which beat the file.
"""

EPILOG = """\
endpoints:
  /health          overall status (200 healthy/degraded, 503 otherwise)
  /health/ready    readiness probe          /health/live    liveness probe
  /health/checks   every check, detailed    /health/history check state changes
  /metrics         Prometheus metrics

exit codes: 0 clean shutdown, 1 forced shutdown, 2 bad configuration,
            3 stopped because a critical check kept failing
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chorus-health",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    try:
        config = load_config(args, config_file=config_file)
    except ConfigError as exc:
        print(f"chorus-health: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log_format, config.log_level)
    # The *_created series double the exposition for no use to alerting rules.
    disable_created_metrics()
    try:
        report = trio.run(_run, config)
    except ConfigError as exc:
        print(f"chorus-health: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return exit_code(report)


async def _run(config: NodeConfig) -> ShutdownReport:
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
