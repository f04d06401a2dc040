"""``chorus-health members | checks | status``: ask a running node, print what it knows.

The operator's ``serf members``: one HTTP request to any node (adapters/client.py), a table
with human durations ("3m12s ago", not nanoseconds), or ``--json`` for scripts. The tables
are drawn by the pure adapters/cli_format.py.

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
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from adapters.cli_format import checks_table, members_table, printable, status_lines, verdict
from adapters.client import (
    DEFAULT_NODE_URL,
    HTTP_TIMEOUT,
    ClientError,
    NodeClient,
    NodeUnreachable,
    TokenRefused,
    normalize_url,
)
from mesh.errors import ConfigError
from mesh.health_token import is_loopback_host, is_token_text, read_token_file

__all__ = [
    "COMMANDS",
    "EXIT_BAD_ANSWER",
    "EXIT_OK",
    "EXIT_TOKEN",
    "EXIT_UNHEALTHY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_commands",
    "resolve_token",
    "run_command",
]

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
EXIT_UNREACHABLE, EXIT_TOKEN, EXIT_BAD_ANSWER = 3, 4, 5
TOKEN_ENV, TOKEN_FILE_ENV = "CHORUS_HEALTH_TOKEN", "CHORUS_HEALTH_TOKEN_FILE"


class UsageProblem(Exception):
    """A bad command line the parser cannot see (an unreadable token file)."""


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
        if token and not is_token_text(token):
            raise UsageProblem("the token must be visible ASCII, one line, no spaces")
        if token and not (args.client_token or args.client_token_file):
            # A token from the environment (a node's own container sets it) goes to this
            # node only: sent to any --node, it would be given to whoever answers there.
            token = token if is_loopback(args.node) else None
        return run(NodeClient(args.node, token=token, timeout=args.timeout), args, out)
    except UsageProblem as exc:
        print(f"chorus-health: error: {printable(exc)}", file=err)
        return EXIT_USAGE
    except TokenRefused as exc:
        hint = f"give it with --health-token-file FILE or {TOKEN_ENV}"
        if not is_loopback(args.node):
            hint = "give it with --health-token-file FILE (the variables serve this machine only)"
        print(f"chorus-health: error: {printable(exc)}; {hint}", file=err)
        return EXIT_TOKEN
    except NodeUnreachable as exc:
        print(f"chorus-health: error: {printable(exc)}", file=err)
        return EXIT_UNREACHABLE
    except ClientError as exc:  # BadAnswer, or any other failure to ask
        print(f"chorus-health: error: {printable(exc)}", file=err)
        return EXIT_BAD_ANSWER
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # Whatever answered chose shapes and numbers no node sends (an infinite latency, a
        # list where a check should be): one line, not a traceback.
        print(f"chorus-health: error: {args.node}: not a node's answer: {exc!r:.200}", file=err)
        return EXIT_BAD_ANSWER


def is_loopback(node: str) -> bool:
    """Whether ``node`` (a --node value) names this machine: localhost or a loopback IP."""
    return is_loopback_host(urllib.parse.urlsplit(normalize_url(node)).hostname or "")


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
        return read_token_file(path, source)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None


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
    out.write("".join(printable(line) + "\n" for line in lines))


def _dump(body: object, out: TextIO) -> None:
    out.write(json.dumps(body, indent=2) + "\n")


COMMANDS = ("members", "checks", "status")
