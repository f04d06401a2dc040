"""The command line of ``python -m devnet``: its parser, the types of its arguments, and its
exit codes (0 done, 1 the devnet failed, 2 bad usage).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from devnet.cluster import DEFAULT_DIR, DEFAULT_PROBE_INTERVAL, PROBE_SECONDS_PER_NODE, STOP_TIMEOUT

# Above this many nodes `up` paces its starts unless told otherwise (--paced/--no-paced):
# two cores hold 20 nodes started back to back, not 30 (BENCHMARKS.md, 2026-12-03).
PACE_ABOVE = 20

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "node_count",
    "node_group",
    "node_index",
    "positive_float",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Run a devnet of chorus-health nodes on 127.0.0.1, each a separate OS process with its own
HTTP and libp2p port, node i bootstrapping to node i-1. Its run folder (--dir) holds the
node keys, logs and state.json, so a second terminal can act on it.
"""

EPILOG = """\
examples:
  python -m devnet up                  5 nodes; live table until Ctrl-C, which stops them all
  python -m devnet up -n 10 -- --log-level debug    extra flags after -- go to every node
  python -m devnet status              the table once (from a second terminal)
  python -m devnet kill 3              SIGKILL node 3: a crash
  python -m devnet freeze 3            SIGSTOP node 3 (thaw 3 resumes it)
  python -m devnet stop 3              SIGTERM node 3: a graceful leave
  python -m devnet restart 3           start node 3 again with the same identity and ports
  python -m devnet logs 3 -f           follow node 3's log
  python -m devnet up --netns          nodes in network namespaces (root), then:
  python -m devnet partition 1,2       cut nodes 1,2 off from the rest (heal undoes it)
  python -m devnet down                stop every node

exit codes: 0 done, 1 the devnet failed, 2 bad usage
"""


def node_index(raw: str) -> int:
    """NODE as ``3`` or ``node3``."""
    text = raw.removeprefix("node")
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a node number like 3 or node3, got {raw!r}")
    return int(text)


def node_group(raw: str) -> list[int]:
    """GROUP as ``1,2,3`` (or ``node1,node2``)."""
    return [node_index(part) for part in raw.split(",") if part]


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw!r}")
    return value


def node_count(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise argparse.ArgumentTypeError(f"expected a node count from 1 to 100, got {raw!r}")
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("DEVNET_DIR", DEFAULT_DIR)),
        help="the devnet's run folder [DEVNET_DIR] (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m devnet",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        parents=[common],
        help="start a devnet, wait until it converges, show the live table until Ctrl-C",
        description="Start N nodes one after another, wait until every node is ready and "
        "every view agrees, print the endpoints, then redraw the cluster table until "
        "Ctrl-C, which stops every node gracefully (a second Ctrl-C kills them). Flags "
        "after -- are passed to every node (chorus-health --help lists them).",
    )
    up.add_argument("-n", "--nodes", type=node_count, default=5, help="nodes (default: 5)")
    up.add_argument(
        "--profile",
        choices=("devnet", "production"),
        default="devnet",
        help="the nodes' --profile (default: %(default)s: probes every 15 s, no drain; "
        "production: as operators run it, with its probe timing and a 2 s drain, and "
        "--probe-interval is ignored)",
    )
    up.add_argument(
        "--probe-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds between network probes on every node (default:"
        f" {DEFAULT_PROBE_INTERVAL:g}, or {PROBE_SECONDS_PER_NODE:g} per node above"
        f" {DEFAULT_PROBE_INTERVAL / PROBE_SECONDS_PER_NODE:g} nodes)",
    )
    up.add_argument(
        "--timeout",
        type=positive_float,
        default=180.0,
        metavar="SECONDS",
        help="give up if not ready and converged by then (default: %(default)g)",
    )
    up.add_argument(
        "--refresh",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between two redraws of the table (default: %(default)g)",
    )
    up.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop the devnet after this long instead of waiting for Ctrl-C",
    )
    up.add_argument(
        "--netns",
        action="store_true",
        help="each node in its own network namespace on a bridge (10.x addresses instead of "
        "127.0.0.1), so that `partition` can cut the network; needs root and iproute2",
    )
    up.add_argument(
        "--open",
        action="store_true",
        help="no admission policy: any peer may join the views (by default the run's own "
        "cluster authority, authority.key in the run folder, certifies every node)",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="return once converged and leave the nodes running (stop them with: down)",
    )
    up.add_argument(
        "--paced",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start each node only once every view of the nodes before it agrees (default:"
        f" above {PACE_ABOVE} nodes; on two cores 30 nodes started back to back saturate"
        " both, and nodes stop themselves on their failing critical probes)",
    )

    status = sub.add_parser("status", parents=[common], help="print the cluster table once")
    status.add_argument(
        "--from",
        dest="observer",
        type=node_index,
        default=None,
        metavar="NODE",
        help="show this node's view (default: the first node that answers)",
    )
    status.add_argument("--json", action="store_true", help="machine-readable summary")

    for name, what in (
        ("kill", "SIGKILL a node: it vanishes without a word"),
        ("freeze", "SIGSTOP a node: it keeps its sockets and answers nothing"),
        ("thaw", "SIGCONT a frozen node"),
        ("stop", "SIGTERM a node: a graceful leave; waits for it to exit"),
        ("restart", "stop a node if it runs, start it again with the same identity and ports"),
    ):
        command = sub.add_parser(name, parents=[common], help=what, description=what)
        command.add_argument("node", type=node_index, metavar="NODE", help="3 or node3")

    partition = sub.add_parser(
        "partition",
        parents=[common],
        help="cut the network between groups of nodes (a devnet started with up --netns)",
        description="Drop every packet between the groups, silently, at each node's network "
        "interface. One group: it against all other nodes. `heal` undoes it.",
    )
    partition.add_argument(
        "groups", nargs="+", type=node_group, metavar="GROUP", help="nodes like 1,2"
    )
    sub.add_parser("heal", parents=[common], help="undo a partition")

    logs = sub.add_parser("logs", parents=[common], help="print a node's log")
    logs.add_argument("node", type=node_index, metavar="NODE", help="3 or node3")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "-n",
        "--lines",
        type=int,
        default=50,
        metavar="N",
        help="last N lines, 0 for all (default: %(default)s)",
    )
    logs.add_argument("--raw", action="store_true", help="the JSON lines as the node wrote them")

    down = sub.add_parser("down", parents=[common], help="stop every node of the devnet")
    down.add_argument(
        "--timeout",
        type=positive_float,
        default=STOP_TIMEOUT,
        metavar="SECONDS",
        help="SIGKILL what has not left gracefully by then (default: %(default)g)",
    )
    return parser
