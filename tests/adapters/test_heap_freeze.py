"""adapters/heap_freeze.py: the start-up heap is frozen once, after the delay."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio
from trio.testing import MockClock

from adapters.heap_freeze import freeze_later


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap is not ours to pin


async def test_the_heap_is_frozen_after_the_delay_not_before(
    autojump_clock: MockClock, unfrozen: None
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(freeze_later, 30.0)
        await trio.sleep(29.0)
        assert gc.get_freeze_count() == 0
        await trio.sleep(2.0)
    assert gc.get_freeze_count() > 0
