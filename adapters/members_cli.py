"""``chorus-health members | checks | status``: ask a running node, print what it knows.

The operator's ``serf members``: one HTTP request to any node (adapters/client.py), a table
with human durations ("3m12s ago", not nanoseconds), or ``--json`` for scripts. The table
formatting is pure (values in, lines out) and tested as such.

Exit codes: 0 ok; 1 ``status`` only: the node or its cluster is not serving (unhealthy,
starting, stopping; with --strict also degraded); 2 bad usage (argparse, an unreadable
token file); 3 the node is unreachable; 4 bad or missing token (HTTP 401/403); 5 what
answered is not a CHORUS health node (or one too old for the endpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from adapters.client import (
    DEFAULT_NODE_URL,
    HTTP_TIMEOUT,
    BadAnswer,
    ClientError,
    ClusterView,
    NodeClient,
    NodeUnreachable,
    PeerView,
    TokenRefused,
)

__all__ = [
    "COMMANDS",
    "EXIT_BAD_ANSWER",
    "EXIT_OK",
    "EXIT_TOKEN",
    "EXIT_UNHEALTHY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_commands",
    "ago",
    "checks_table",
    "human_duration",
    "members_table",
    "run_command",
    "status_lines",
]

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
EXIT_UNREACHABLE, EXIT_TOKEN, EXIT_BAD_ANSWER = 3, 4, 5
SERVING = ("healthy", "degraded")  # mesh.model.Status.serving: /health answers 200
TOKEN_ENV, TOKEN_FILE_ENV = "CHORUS_HEALTH_TOKEN", "CHORUS_HEALTH_TOKEN_FILE"
MAX_TOKEN_BYTES = 4096  # as the node reads its own token file (mesh/config.py)


class UsageProblem(Exception):
    """A bad command line the parser cannot see (an unreadable token file)."""


# ------------------------------------------------------------------------ pure formatting


def human_duration(seconds: float) -> str:
    """``<1ms``, ``420ms``, ``4.2s``, ``42s``, ``3m12s``, ``2h5m``, ``3d4h``: two units at most,
    rounded down, like an uptime; negative values (clock skew) read as 0."""
    if seconds <= 0:
        return "0s"
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 10:
        return f"{int(seconds * 10) / 10:.1f}s"
    whole = int(seconds)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{whole % size // small_size}{small}"
    return f"{whole}s"


def ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{human_duration(seconds)} ago"


def seconds_since(stamp: object, now: float) -> float | None:
    """Seconds from an RFC 3339 time (as the node writes them) to ``now`` (Unix seconds)."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return now - moment.timestamp()


def _grid(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(headers)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.2f}"


def _address(peer: PeerView) -> str:
    """Where to ask the member next (its HTTP address), else its first libp2p address."""
    if peer.http_addr:
        return peer.http_addr
    return peer.p2p_addrs[0].split("/p2p/")[0] if peer.p2p_addrs else "-"


def _tags(peer: PeerView, admin: str | None) -> str:
    tags = [t for t, on in (("self", peer.is_self), ("admin", peer.peer_id == admin)) if on]
    if peer.suspected_by:
        tags.append(f"suspected-by={len(peer.suspected_by)}")
    return ",".join(tags) or "-"


def members_table(view: ClusterView) -> list[str]:
    """A summary line, then one row per member: the observer first, then by peer id."""
    counts = ", ".join(f"{n} {state}" for state, n in view.counts().items())
    head = (
        f"view of {view.node_id}: cluster {view.status or '?'} (score {_score(view.score)});"
        f" {counts}; admin {view.admin or 'none'}"
    )
    peers = sorted(view.peers, key=lambda p: (not p.is_self, p.peer_id))
    rows = [
        (
            p.peer_id,
            _address(p),
            p.state,
            p.status or "-",
            _score(p.score),
            "now" if p.is_self else ago(p.last_seen_age),
            p.version or "-",
            _tags(p, view.admin),
        )
        for p in peers
    ]
    headers = ("PEER", "ADDRESS", "STATE", "STATUS", "SCORE", "LAST SEEN", "VERSION", "TAGS")
    return [head, *_grid(headers, rows)]


def checks_table(body: Mapping[str, Any], now: float) -> list[str]:
    """One row per check of a /health/checks body; ``now`` in Unix seconds."""
    rows = []
    for name, check in sorted(body.get("checks", {}).items()):
        healthy = check.get("healthy")
        latency = check.get("latency")
        rows.append(
            (
                name,
                str(check.get("state", "-")) if check.get("enabled", True) else "disabled",
                "-" if healthy is None else ("yes" if healthy else "no"),
                "yes" if check.get("critical") else "no",
                ago(seconds_since(check.get("last_run"), now)),
                human_duration(latency / 1e9) if isinstance(latency, int | float) else "-",
                str(check.get("message") or check.get("error") or ""),
            )
        )
    headers = ("CHECK", "STATE", "HEALTHY", "CRITICAL", "LAST RUN", "LATENCY", "MESSAGE")
    return _grid(headers, rows)


def status_lines(health: Mapping[str, Any], view: ClusterView | None) -> list[str]:
    """The node's own /health, then its cluster view's verdict (None: not asked)."""
    uptime = health.get("uptime")
    up = human_duration(uptime / 1e9) if isinstance(uptime, int | float) else "?"
    lines = [
        f"node     {health.get('node_id') or '?'}  {health.get('version') or ''}  up {up}",
        f"status   {health.get('status')}: {health.get('message') or ''}".rstrip(": "),
    ]
    failing = sorted(n for n, c in health.get("checks", {}).items() if not c.get("healthy"))
    if failing:
        lines.append(f"failing  {', '.join(failing)}")
    if view is not None:
        counts = ", ".join(f"{n} {state}" for state, n in view.counts().items())
        lines.append(
            f"cluster  {view.status or '?'} (score {_score(view.score)}); {counts};"
            f" admin {view.admin or 'none'}"
        )
    return lines


def verdict(health: Mapping[str, Any], view: ClusterView | None, *, strict: bool) -> bool:
    """Whether ``status`` exits 0: the node, and its cluster view, serving (or healthy)."""
    good = ("healthy",) if strict else SERVING
    return health.get("status") in good and (view is None or view.status in good)


# ----------------------------------------------------------------------------- commands


def add_commands(sub: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add members, checks and status to an ``add_subparsers()`` object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--node",
        metavar="URL",
        default=DEFAULT_NODE_URL,
        help="the node to ask, http://HOST:PORT or HOST:PORT (default: %(default)s)",
    )
    token = common.add_mutually_exclusive_group()
    token.add_argument(
        "--health-token",
        dest="client_token",
        metavar="TOKEN",
        help=f"the node's bearer token [{TOKEN_ENV}] (a flag's value shows in ps)",
    )
    token.add_argument(
        "--health-token-file",
        dest="client_token_file",
        metavar="FILE",
        help=f"file holding that token [{TOKEN_FILE_ENV}]",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=HTTP_TIMEOUT,
        metavar="SECONDS",
        help="give up on the node after this long (default: %(default)g)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    members = sub.add_parser(
        "members",
        parents=[common, *parents],
        help="the cluster's members as one node sees them (like serf members)",
        description="Every member of the node's signed cluster view: its state (alive,"
        " suspect, dead, left), the status and score it reports, when it was last heard"
        " from, and which member is admin. --json prints GET /health/cluster as served.",
    )
    members.set_defaults(command_run=cmd_members)
    checks = sub.add_parser(
        "checks",
        parents=[common, *parents],
        help="the node's checks: state, last run, latency, message",
        description="The node's local checks and network probes with their flap state,"
        " last result and latency. --json prints GET /health/checks as served"
        " (durations in nanoseconds).",
    )
    checks.set_defaults(command_run=cmd_checks)
    status = sub.add_parser(
        "status",
        parents=[common, *parents],
        help="the node's status and its cluster's; exit 1 unless both are serving",
        description="The node's own status (GET /health) and its cluster view's verdict"
        " (GET /health/cluster). Exits 0 when both are healthy or degraded, 1 otherwise.",
    )
    status.add_argument(
        "--strict", action="store_true", help="exit 1 unless both are healthy (not degraded)"
    )
    status.set_defaults(command_run=cmd_status)


def run_command(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the chosen subcommand; every failure becomes one line on stderr and an exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    run: Callable[[NodeClient, argparse.Namespace, TextIO], int] = args.command_run
    try:
        token = resolve_token(args.client_token, args.client_token_file, os.environ)
        return run(NodeClient(args.node, token=token, timeout=args.timeout), args, out)
    except UsageProblem as exc:
        print(f"chorus-health: error: {exc}", file=err)
        return EXIT_USAGE
    except TokenRefused as exc:
        hint = f"give it with --health-token-file FILE or {TOKEN_ENV}"
        print(f"chorus-health: error: {exc}; {hint}", file=err)
        return EXIT_TOKEN
    except NodeUnreachable as exc:
        print(f"chorus-health: error: {exc}", file=err)
        return EXIT_UNREACHABLE
    except (BadAnswer, ClientError) as exc:
        print(f"chorus-health: error: {exc}", file=err)
        return EXIT_BAD_ANSWER


def resolve_token(
    flag: str | None, flag_file: str | None, environ: Mapping[str, str]
) -> str | None:
    """The flags (one of them), else CHORUS_HEALTH_TOKEN_FILE or CHORUS_HEALTH_TOKEN (not
    both), else None: flags beat variables, as for the node.

    The node reads the same two variables (mesh/config.py), so inside its container the
    command finds the token with no flag.
    """
    if flag:
        return flag.strip()
    if flag_file:
        return _read_token(flag_file, "--health-token-file")
    if environ.get(TOKEN_FILE_ENV) and environ.get(TOKEN_ENV):
        raise UsageProblem(f"give the token once: {TOKEN_ENV} and {TOKEN_FILE_ENV} are both set")
    if environ.get(TOKEN_FILE_ENV):
        return _read_token(environ[TOKEN_FILE_ENV], TOKEN_FILE_ENV)
    return environ.get(TOKEN_ENV) or None


def _read_token(path: str, source: str) -> str:
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise UsageProblem(f"{source}: cannot read {path}: {exc.strerror}") from None
    token = raw.decode("utf-8", "replace").strip()
    if not token or len(raw) > MAX_TOKEN_BYTES:
        raise UsageProblem(f"{source}: {path} holds no token (empty or over 4096 bytes)")
    return token


def cmd_members(client: NodeClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        _dump(client.cluster_json(), out)
    else:
        _print(members_table(client.cluster()), out)
    return EXIT_OK


def cmd_checks(client: NodeClient, args: argparse.Namespace, out: TextIO) -> int:
    body = client.checks()
    if args.json:
        _dump(body, out)
    else:
        _print(checks_table(body, time.time()), out)
    return EXIT_OK


def cmd_status(client: NodeClient, args: argparse.Namespace, out: TextIO) -> int:
    _, health = client.health()
    view = client.cluster()
    ok = verdict(health, view, strict=args.strict)
    if args.json:
        cluster = {
            "node_id": view.node_id,
            "status": view.status,
            "score": view.score,
            "admin": view.admin,
            "counts": view.counts(),
        }
        _dump({"ok": ok, "node": health, "cluster": cluster}, out)
    else:
        _print(status_lines(health, view), out)
    return EXIT_OK if ok else EXIT_UNHEALTHY


def _print(lines: Iterable[str], out: TextIO) -> None:
    out.write("".join(line + "\n" for line in lines))


def _dump(body: object, out: TextIO) -> None:
    out.write(json.dumps(body, indent=2) + "\n")


COMMANDS = ("members", "checks", "status")
