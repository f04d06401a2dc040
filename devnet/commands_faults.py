"""The commands that break or mend a running devnet from a second terminal: kill, freeze,
thaw and restart one node (:func:`signal_command`), stop it gracefully, partition the
network and heal it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from devnet.cluster import Devnet
from devnet.commands_args import EXIT_OK

__all__ = ["cmd_heal", "cmd_partition", "cmd_stop", "signal_command"]


def signal_command(
    action: Callable[[Devnet, int], object], done: str
) -> Callable[[argparse.Namespace, list[str]], int]:
    """A command that applies ``action`` to its NODE and prints ``done`` about it."""

    def run(args: argparse.Namespace, _node_args: list[str]) -> int:
        with Devnet(args.dir) as devnet:
            action(devnet, args.node)
            rec = devnet.state().node(args.node)
        print(done.format(name=rec.name, pid=rec.pid, url=rec.http_url))
        return EXIT_OK

    return run


def cmd_stop(args: argparse.Namespace, _node_args: list[str]) -> int:
    with Devnet(args.dir) as devnet:
        rec = devnet.state().node(args.node)
        devnet.stop(args.node)
    print(f"{rec.name} (pid {rec.pid}) left and exited")
    return EXIT_OK


def cmd_partition(args: argparse.Namespace, _node_args: list[str]) -> int:
    with Devnet(args.dir) as devnet:
        groups = devnet.partition(args.groups)
    shown = " | ".join(",".join(f"node{i}" for i in group) for group in groups)
    print(f"partitioned: {shown} (undo with: heal)")
    return EXIT_OK


def cmd_heal(args: argparse.Namespace, _node_args: list[str]) -> int:
    with Devnet(args.dir) as devnet:
        devnet.heal()
    print("healed: every node reaches every other again")
    return EXIT_OK
