"""Small helpers shared by tests that talk to real sockets and processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio


async def http_get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET a JSON endpoint over a real socket; returns (status, body)."""

    def fetch() -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())

    return await trio.to_thread.run_sync(fetch)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float,
    poll: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while True:
            outcome = condition()
            if not isinstance(outcome, bool):
                outcome = await outcome
            if outcome:
                return
            await trio.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class NodeProcess:
    """A real ``chorus-health`` process on 127.0.0.1 with free ports, logging to a file."""

    LISTEN_LINE = re.compile(
        r"node (\S+) serving health endpoints on (http://[\d.]+:\d+), libp2p on (\S+)"
    )

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.args = args
        self.log_path = data_dir.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self.peer_id = self.url = self.p2p_addr = ""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "adapters.cli",
                    "--health-port",
                    "0",
                    "--p2p-port",
                    "0",
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
            )
        self.peer_id = self.url = self.p2p_addr = ""

    async def wait_listening(self, timeout: float = 30) -> None:
        def listening() -> bool:
            found = self.LISTEN_LINE.findall(self.log_path.read_text())
            if found:
                self.peer_id, self.url, self.p2p_addr = found[-1]
                self.p2p_addr = self.p2p_addr.rstrip(",")
            return bool(found) and self.process is not None and self.process.poll() is None

        await wait_until(listening, timeout=timeout, what=f"{self.data_dir.name} to listen")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


PROJECT = Path(__file__).resolve().parents[1]
