"""The start-up heap moved out of the cyclic garbage collector's way, once.

A node's process holds a few hundred thousand objects once it is up: py-libp2p, protobuf,
cryptography, quart, and everything made to start them. CPython's collector walks all of
them at every full (oldest-generation) collection, though almost none ever becomes
garbage. ``gc.freeze()`` moves every object alive at that moment to a permanent generation
the collector no longer visits (CPython's documentation recommends it after start-up).
Measured with GC callbacks in every node of an idle 10-node production devnet (about 75 s
of steady state, 2026-12-05): the collector took 11.8 % of a node's CPU without the
freeze, in full collections of up to 282 ms (a ping answered that late is a late ping),
and 0.56 % with it. Whole-node CPU figures did not show it beyond their spread between
runs (1.6-2.0 % of a core at 120 s windows).

What it costs: an object alive at the freeze that later becomes part of a reference cycle
is never collected (plain reference counting still frees everything else). Most of what
is frozen is modules, classes and functions, which live as long as the process; but the
connections open at the freeze (to the bootstrap peers, and to any peer met in the first
seconds) are frozen too, and when one closes its cyclic objects stay. That is bounded by
what was alive at the freeze and happens once, not a growth with uptime; a full collection
just before the freeze leaves start-up's garbage out of it. Freezing right after the
imports, before the host dials anyone, would leave the connections out; not measured yet.

Only the node's own process freezes (``adapters.cli``): a test process runs many nodes
and its heap is not ours to pin.
"""

from __future__ import annotations

import gc
import logging

import trio

__all__ = ["FREEZE_AFTER", "freeze_later"]

logger = logging.getLogger(__name__)

# Seconds after start: past the imports, the host's start-up and the bootstrap dials,
# whose garbage a collection then still clears. Not much later: the collection before the
# freeze costs a node about 80 ms of CPU once, and a cluster measured for its idle cost
# soon after it converged (make bench: 3 s after) should not pay it in the window.
FREEZE_AFTER = 10.0


async def freeze_later(delay: float = FREEZE_AFTER) -> None:
    """Sleep ``delay`` seconds, collect, then freeze what is left."""
    await trio.sleep(delay)
    collected = gc.collect()
    gc.freeze()
    logger.debug(
        "heap frozen after start-up: %d objects, %d collected first",
        gc.get_freeze_count(),
        collected,
    )
