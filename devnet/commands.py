"""``python -m devnet``: start a local devnet, look at it, break it, stop it.

Exit codes: 0 done, 1 the devnet failed (a node did not start, the views did not converge,
a process could not be stopped), 2 bad usage (unknown node, no devnet in the folder, a
devnet already running there).

This module dispatches a command line to its command; the parser is in
:mod:`devnet.commands_args`, ``up`` and ``down`` in :mod:`devnet.commands_up`, the faults in
:mod:`devnet.commands_faults`, ``status`` and ``logs`` in :mod:`devnet.commands_status`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from devnet.cluster import Devnet, DevnetError, UsageError
from devnet.commands_args import EXIT_FAILED, EXIT_USAGE, build_parser
from devnet.commands_faults import cmd_heal, cmd_partition, cmd_stop, signal_command
from devnet.commands_status import cmd_logs, cmd_status
from devnet.commands_up import cmd_down, cmd_up

__all__ = ["COMMANDS", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    node_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, node_args = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if node_args and args.command != "up":
        parser.error("node flags after -- only go with up")
    try:
        return COMMANDS[args.command](args, node_args)
    except UsageError as exc:
        print(f"devnet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DevnetError as exc:
        print(f"devnet: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "up": cmd_up,
    "status": cmd_status,
    "kill": signal_command(Devnet.kill, "{name} (pid {pid}) killed with SIGKILL"),
    "freeze": signal_command(Devnet.freeze, "{name} (pid {pid}) frozen with SIGSTOP"),
    "thaw": signal_command(Devnet.thaw, "{name} (pid {pid}) thawed with SIGCONT"),
    "stop": cmd_stop,
    "restart": signal_command(Devnet.restart, "{name} restarted: pid {pid}, {url}"),
    "partition": cmd_partition,
    "heal": cmd_heal,
    "logs": cmd_logs,
    "down": cmd_down,
}
