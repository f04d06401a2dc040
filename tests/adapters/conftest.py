"""Fixtures for the libp2p adapter tests: node configs on 127.0.0.1:0 and bounded waits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from adapters.p2p_config import P2PConfig
from tests.adapters import WaitUntil


@pytest.fixture
def p2p_config(tmp_path: Path) -> Callable[..., P2PConfig]:
    """``p2p_config("a", bootstrap=(...,))``: a config with its own key file, port 0."""

    def make(name: str, **overrides: Any) -> P2PConfig:
        overrides.setdefault("listen_port", 0)
        return P2PConfig(key_file=tmp_path / f"{name}.key", **overrides)

    return make


async def _wait_until(cond: Callable[[], object], within: float = 10.0, what: str = "") -> None:
    # Polling on purpose: the conditions are library state with no event to wait on.
    try:
        with trio.fail_after(within):
            while not cond():  # noqa: ASYNC110
                await trio.sleep(0.02)
    except trio.TooSlowError:
        pytest.fail(f"not true within {within}s: {what or cond}")


@pytest.fixture
def wait_until() -> WaitUntil:
    """``await wait_until(lambda: cond, within=10, what="...")``: poll, bounded."""
    return _wait_until
