"""The imported heap moved out of the cyclic garbage collector's way, once.

A node's process holds a few hundred thousand objects once py-libp2p, protobuf,
cryptography and quart are imported. CPython's collector walks all of them at every full
(oldest-generation) collection, though almost none ever becomes garbage. ``gc.freeze()``
moves every object alive at that moment to a permanent generation the collector no longer
visits (CPython's documentation recommends it after start-up). Measured with GC callbacks
in every node of an idle 10-node production devnet (about 75 s of steady state,
2026-12-05): the collector took 11.8 % of a node's CPU without a freeze, in full
collections of up to 282 ms (a ping answered that late is a late ping), and 0.56 % with it.

When: right after the imports, before the node starts its host (``adapters.cli``). The
collection before the freeze then costs its 30-40 ms while the node is starting, not in
the first minute of a running cluster: frozen 10 s after start, as first done, it fell
inside the bench's idle window (3 s after the last node is ready) on 9 of 10 nodes, about
40 ms each, where the collector otherwise took 1-9 ms. Nothing made later is frozen: the
collector's steady-state share stays about 1 ms a minute per node (GC callbacks, 10 nodes,
2026-12-05), and connections, streams and peers that come and go stay collectable.

Only the node's own process freezes: a test process runs many nodes and its heap is not
ours to pin.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_imported_heap"]

logger = logging.getLogger(__name__)


def freeze_imported_heap() -> None:
    """Collect the imports' garbage, then freeze everything still alive."""
    collected = gc.collect()
    gc.freeze()
    logger.debug(
        "imported heap frozen: %d objects, %d collected first", gc.get_freeze_count(), collected
    )
