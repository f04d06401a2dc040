"""Loads the cost hooks into a node started by devnet/cost_breakdown.py.

Measurement tool, not product code. Python imports ``sitecustomize`` at start-up from the
first folder on PYTHONPATH that has one; cost_breakdown puts devnet/costinst first only for
its own runs, and the hooks do nothing unless a ``COST_*`` variable asks for them.
"""

from __future__ import annotations

import os
import sys

if any(name.startswith("COST_") for name in os.environ):
    try:
        # The hooks import libp2p: shield first, as the node command does, so that
        # instrumented nodes hold what uninstrumented ones hold.
        from adapters import import_shield

        import_shield.shield()
        import _cost_hooks  # type: ignore[import-not-found]  # same folder, top-level on sys.path

        _cost_hooks.install_from_env()
    except Exception as exc:  # report, but never stop the interpreter from starting
        print(f"cost instrumentation failed to load: {exc!r}", file=sys.stderr)
