"""Tests of the libp2p edge: adapters/libp2p_host.py, adapters/pubsub.py, adapters/dht.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# The ``wait_until`` fixture's type (tests/adapters/conftest.py).
WaitUntil = Callable[..., Awaitable[None]]
