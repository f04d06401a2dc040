"""``python -m devnet``: start a local devnet, look at it, break it, stop it.

Exit codes: 0 done, 1 the devnet failed (a node did not start, the views did not converge,
a process could not be stopped), 2 bad usage (unknown node, no devnet in the folder, a
devnet already running there).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from devnet.cluster import (
    DEFAULT_DIR,
    DEFAULT_PROBE_INTERVAL,
    PROBE_SECONDS_PER_NODE,
    STOP_TIMEOUT,
    Devnet,
    DevnetError,
    NodeRecord,
    NotConverged,
    Proc,
    Snapshot,
    UsageError,
    agreement,
    proc_state,
)
from devnet.table import LiveDisplay, Progress, endpoints, render, use_color

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


# ---------------------------------------------------------------------------------- up


class _Stop(Exception):
    """SIGTERM or SIGHUP reached ``up``: leave the live loop and stop the nodes."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def cmd_up(args: argparse.Namespace, node_args: list[str]) -> int:
    # A killed terminal (SIGHUP) or `down` from another one (SIGTERM) must still stop nodes.
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    progress = Progress()
    devnet = Devnet(args.dir, die_with_parent=not args.detach)
    keep_running = False
    code = EXIT_OK
    try:
        deadline = time.monotonic() + args.timeout

        def started(rec: NodeRecord, seconds: float) -> None:
            progress.line(f"{rec.name} up in {seconds:.1f}s  {rec.http_url}  {rec.peer_id}")

        devnet.up(
            args.nodes,
            node_args=node_args,
            probe_interval=args.probe_interval,
            progress=progress,
            started=started,
            owned=not args.detach,
            netns=args.netns,
            admission=not args.open,
            profile=args.profile,
        )
        last_start = time.monotonic()
        devnet.wait_ready(max(1.0, deadline - time.monotonic()), progress)
        try:
            devnet.wait_converged(max(1.0, deadline - time.monotonic()), progress)
            progress.line(
                f"converged: all {args.nodes} nodes agree,"
                f" {time.monotonic() - last_start:.1f}s after the last one started"
            )
        except NotConverged as exc:
            if args.detach:
                raise
            # The table shows who disagrees with whom: more use than stopping everything.
            progress.line(f"warning: {exc}; showing the table anyway")
        print("\n".join(endpoints(devnet.state())), flush=True)
        if args.detach:
            keep_running = True
            print(f"running in the background; stop with: python -m devnet down --dir {args.dir}")
            return EXIT_OK
        print("Ctrl-C stops every node.\n", flush=True)
        _live(devnet, args.refresh, args.duration)
    except (KeyboardInterrupt, _Stop):
        progress.done()
    except DevnetError as exc:
        progress.done()
        print(f"devnet: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
        if isinstance(exc, UsageError):
            keep_running = True  # e.g. another devnet runs there: not ours to stop
    finally:
        try:
            if not keep_running:
                _down_interactively(devnet, STOP_TIMEOUT)
        finally:
            devnet.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return code


def _live(devnet: Devnet, refresh: float, duration: float | None) -> None:
    """Redraw the table every ``refresh`` seconds until Ctrl-C (or ``duration``)."""
    display = LiveDisplay()
    color = use_color(sys.stdout)
    until = time.monotonic() + duration if duration else None
    while until is None or time.monotonic() < until:
        began = time.monotonic()
        snap = devnet.snapshot()
        state = devnet.state()
        display.show(render(snap, state, color=color), changed_key=_frame_key(snap))
        time.sleep(max(0.0, refresh - (time.monotonic() - began)))


def _frame_key(snap: Snapshot) -> list[str]:
    """What makes a frame worth printing again off a terminal (not the ticking ages)."""
    key = [f"{i}:{p.value}" for i, p in sorted(snap.procs.items())]
    for i, view in sorted(snap.views.items()):
        key.append(f"{i}:{view.admin}:" + ",".join(f"{p.peer_id}={p.state}" for p in view.peers))
    return key


def _down_interactively(devnet: Devnet, timeout: float) -> None:
    """Stop all nodes; a second Ctrl-C (or signal) turns the graceful stop into SIGKILL."""
    hurry = False

    def again(_signum: int, _frame: FrameType | None) -> None:
        nonlocal hurry
        hurry = True

    previous = {s: signal.signal(s, again) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if devnet.run.exists():
            running = [r for r in devnet.state().nodes.values() if proc_state(r) is not Proc.EXITED]
            if running:
                print(
                    f"stopping {len(running)} nodes (SIGTERM; Ctrl-C again to kill them)...",
                    file=sys.stderr,
                    flush=True,
                )
        devnet.down(timeout, force=lambda: hurry)
        print("all nodes stopped", file=sys.stderr)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------- second terminal


def cmd_status(args: argparse.Namespace, _node_args: list[str]) -> int:
    with Devnet(args.dir) as devnet:
        state = devnet.state()
        snap = devnet.snapshot()
    if args.json:
        agreed = agreement(snap.views, snap.expected(state))
        body: dict[str, Any] = {
            "dir": str(devnet.run.root),
            "converged": agreed.converged,
            "agreeing": [f"node{i}" for i in agreed.agreeing],
            "admins": sorted(a for a in agreed.admins if a),
            "partition": state.partition,
            "nodes": {
                rec.name: {
                    "pid": rec.pid,
                    "process": snap.procs[i].value,
                    "http": rec.http_url,
                    "multiaddr": rec.multiaddr,
                    "peer_id": rec.peer_id,
                    "log": rec.log,
                    "sees": {p.peer_id: p.state for p in snap.views[i].peers}
                    if i in snap.views
                    else None,
                    "error": snap.errors.get(i),
                }
                for i, rec in sorted(state.nodes.items())
            },
        }
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print("\n".join(endpoints(state)))
    print()
    print("\n".join(render(snap, state, observer=args.observer, color=use_color(sys.stdout))))
    return EXIT_OK


def _signal_command(
    action: Callable[[Devnet, int], object], done: str
) -> Callable[[argparse.Namespace, list[str]], int]:
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


def cmd_logs(args: argparse.Namespace, _node_args: list[str]) -> int:
    with Devnet(args.dir) as devnet:
        rec = devnet.state().node(args.node)
    path = Path(rec.log)
    if not path.exists():
        raise UsageError(f"{rec.name} has no log at {path}")
    with path.open("rb") as log:
        lines = log.read().decode("utf-8", "replace").splitlines()
        if args.lines > 0:
            lines = lines[-args.lines :]
        for line in lines:
            print(line if args.raw else pretty_log_line(line))
        sys.stdout.flush()
        if not args.follow:
            return EXIT_OK
        pending = b""
        try:
            # Follows until Ctrl-C, like tail -f; each pass reads what was appended.
            while path.exists():
                chunk = log.read()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        text = raw.decode("utf-8", "replace")
                        print(text if args.raw else pretty_log_line(text), flush=True)
                else:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def pretty_log_line(line: str) -> str:
    """A node's JSON log line as ``HH:MM:SS.mmm level logger: message``; others as they are."""
    try:
        body = json.loads(line)
    except ValueError:
        return line
    if not isinstance(body, dict) or "message" not in body:
        return line
    stamp = str(body.get("time", ""))
    clock = stamp.split("T", 1)[1].rstrip("Z") if "T" in stamp else stamp
    text = f"{clock} {body.get('level', '')!s:<7} {body.get('logger', '')}: {body['message']}"
    if "exception" in body:
        text += "\n" + str(body["exception"])
    return text


def cmd_down(args: argparse.Namespace, _node_args: list[str]) -> int:
    devnet = Devnet(args.dir)
    try:
        if not devnet.run.exists():
            print(f"no devnet in {devnet.run.root}: nothing to stop")
            return EXIT_OK
        _down_interactively(devnet, args.timeout)
    finally:
        devnet.close()
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "up": cmd_up,
    "status": cmd_status,
    "kill": _signal_command(Devnet.kill, "{name} (pid {pid}) killed with SIGKILL"),
    "freeze": _signal_command(Devnet.freeze, "{name} (pid {pid}) frozen with SIGSTOP"),
    "thaw": _signal_command(Devnet.thaw, "{name} (pid {pid}) thawed with SIGCONT"),
    "stop": cmd_stop,
    "restart": _signal_command(Devnet.restart, "{name} restarted: pid {pid}, {url}"),
    "partition": cmd_partition,
    "heal": cmd_heal,
    "logs": cmd_logs,
    "down": cmd_down,
}
