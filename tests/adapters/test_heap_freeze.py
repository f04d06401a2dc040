"""adapters/heap_freeze.py: what is alive at the freeze leaves the collector's way."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from adapters.heap_freeze import freeze_imported_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap is not ours to pin
    gc.collect()


class Cycle:
    """Garbage only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_alive_at_the_freeze_is_never_visited(unfrozen: None) -> None:
    before = Cycle()
    ref = weakref.ref(before)
    freeze_imported_heap()
    del before
    gc.collect()
    assert ref() is not None
