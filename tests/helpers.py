"""Small helpers shared by tests that talk to real sockets and processes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
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
