"""The commands that look at a running devnet from a second terminal: ``status`` (the cluster
table once, or a JSON summary) and ``logs`` (a node's log, its JSON lines made readable).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from devnet.cluster import Devnet, UsageError, agreement
from devnet.commands_args import EXIT_OK
from devnet.table import endpoints, render, use_color

__all__ = ["cmd_logs", "cmd_status", "pretty_log_line"]


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
