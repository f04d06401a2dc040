"""Run many chorus-health nodes locally, break them, and measure them against Serf.

``python -m devnet up`` starts a devnet (see ``devnet.commands``); ``devnet.cluster.Devnet``
is the API behind it, used by the tests; ``python -m devnet.bench`` runs the benchmarks.
"""

from __future__ import annotations

from devnet.cluster import DEFAULT_DIR, Devnet, DevnetError, Proc, RunState, UsageError

__all__ = ["DEFAULT_DIR", "Devnet", "DevnetError", "Proc", "RunState", "UsageError"]
