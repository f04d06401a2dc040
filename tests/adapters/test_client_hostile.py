"""What answers at --node may be hostile (a squatted pod IP, a member's own HTTP port that
the members table shows): chorus-health gives it no token it did not ask for, follows no
redirect, reads a bounded answer, and fails with one line, never a traceback."""

from __future__ import annotations

import argparse
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters import members_cli
from adapters.client import MAX_ANSWER_BYTES
from adapters.members_cli import EXIT_BAD_ANSWER, EXIT_USAGE, add_commands, is_loopback, run_command
from mesh.errors import ConfigError
from mesh.health_token import read_token_file
from tests.adapters.test_members_cli import TOKEN, chorus, one_error_line

pytestmark = pytest.mark.network

Answer = tuple[int, dict[str, str], bytes]


@contextmanager
def stub(answers: dict[str, Answer]) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """An HTTP server on 127.0.0.1 giving ``answers`` by path; yields its address and the
    (path, Authorization header) of every request it saw."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            code, headers, body = answers.get(self.path, (404, {}, b"{}"))
            self.send_response(code)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{server.server_address[1]}", seen
        finally:
            server.shutdown()


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else() -> None:
    with (
        stub({}) as (elsewhere, taken),
        stub(
            {"/health/cluster": (302, {"Location": f"http://{elsewhere}/health/cluster"}, b"")}
        ) as (node, _),
    ):
        done = chorus("members", "--node", node, "--health-token", TOKEN)
    assert done.returncode == EXIT_BAD_ANSWER
    assert "HTTP 302" in one_error_line(done)
    assert taken == []


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("command", "path", "body"),
    [
        ("checks", "/health/checks", b'{"checks": {"a": {"latency": Infinity}}}'),
        ("checks", "/health/checks", b'{"checks": {"a": [1, 2]}}'),
        ("checks", "/health/checks", b"[" * 100_000),
        ("members", "/health/cluster", b'{"peers": [{"peer_id": "p", "incarnation": 1e999}]}'),
        ("members", "/health/cluster", b" " * (MAX_ANSWER_BYTES + 1)),
    ],
    ids=["infinite-latency", "check-is-a-list", "deep-nesting", "huge-number", "oversized"],
)
def test_an_answer_no_node_sends_is_one_line_and_exit_5(
    command: str, path: str, body: bytes
) -> None:
    with stub({path: (200, JSON, body)}) as (node, _):
        done = chorus(command, "--node", node, "--health-token", TOKEN)
    assert done.returncode == EXIT_BAD_ANSWER, done.stderr
    one_error_line(done)


def test_the_environments_token_goes_to_this_machine_only() -> None:
    assert is_loopback("127.0.0.1:8081") and is_loopback("http://localhost:8081")
    assert is_loopback("http://[::1]:8081/") and is_loopback("127.3.4.5:1")
    assert not is_loopback("10.0.0.5:8081") and not is_loopback("http://node-2.chorus:8081")
    # On this machine it is sent as before.
    cluster = (
        b'{"node_id": "n", "status": "healthy", "score": 1.0, "admin": null, "peers": [],'
        b' "counts": {"alive": 0, "suspect": 0, "dead": 0, "left": 0}}'
    )
    with stub({"/health/cluster": (200, JSON, cluster)}) as (node, seen):
        done = chorus("members", "--node", node, token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert seen == [("/health/cluster", f"Bearer {TOKEN}")]


def test_a_token_that_cannot_be_a_header_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-half\nsecond-half\n")
    with pytest.raises(ConfigError, match="visible ASCII") as caught:
        read_token_file(str(path), "--health-token-file")
    assert "half" not in str(caught.value)
    done = chorus("members", "--health-token-file", str(path))
    assert done.returncode == EXIT_USAGE
    assert "half" not in one_error_line(done)


def test_the_environments_token_is_withheld_from_another_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: list[str | None] = []

    class Recorder:
        def __init__(self, node: str, *, token: str | None, timeout: float) -> None:
            given.append(token)

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    monkeypatch.setenv("CHORUS_HEALTH_TOKEN", TOKEN)
    monkeypatch.setattr(members_cli, "NodeClient", Recorder)
    monkeypatch.setattr(members_cli, "cmd_members", lambda client, args, out: 0)
    for node in ("10.0.0.5:8081", "127.0.0.1:8081"):
        args = parser.parse_args(["members", "--node", node])
        args.command_run = members_cli.cmd_members
        assert run_command(args, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    args = parser.parse_args(["members", "--node", "10.0.0.5:8081", "--health-token", TOKEN])
    args.command_run = members_cli.cmd_members
    run_command(args, stdout=io.StringIO(), stderr=io.StringIO())
    assert given == [None, TOKEN, TOKEN]  # a flag is the operator's say-so
