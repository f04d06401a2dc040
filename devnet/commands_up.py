"""``up`` and ``down``: start a devnet and show its live table until Ctrl-C, and stop every
node of it, gracefully unless a second Ctrl-C says otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from devnet.cluster import (
    STOP_TIMEOUT,
    Devnet,
    DevnetError,
    NodeRecord,
    NotConverged,
    Proc,
    Snapshot,
    UsageError,
    proc_state,
)
from devnet.commands_args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PACE_ABOVE
from devnet.table import LiveDisplay, Progress, endpoints, render, use_color

__all__ = ["cmd_down", "cmd_up", "down_interactively"]


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

        paced = args.nodes > PACE_ABOVE if args.paced is None else args.paced

        def started(rec: NodeRecord, seconds: float) -> None:
            progress.line(f"{rec.name} up in {seconds:.1f}s  {rec.http_url}  {rec.peer_id}")
            if paced and rec.index < args.nodes:
                # Once a second, not the default four times: each poll still asks every
                # node while the newest one is joining and the CPU is at its scarcest.
                devnet.wait_converged(max(1.0, deadline - time.monotonic()), progress, poll=1.0)
                progress.line(f"paced: nodes 1-{rec.index} agree; starting node{rec.index + 1}")

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
                down_interactively(devnet, STOP_TIMEOUT)
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


def down_interactively(devnet: Devnet, timeout: float) -> None:
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


def cmd_down(args: argparse.Namespace, _node_args: list[str]) -> int:
    devnet = Devnet(args.dir)
    try:
        if not devnet.run.exists():
            print(f"no devnet in {devnet.run.root}: nothing to stop")
            return EXIT_OK
        down_interactively(devnet, args.timeout)
    finally:
        devnet.close()
    return EXIT_OK
