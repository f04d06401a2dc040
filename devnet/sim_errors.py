"""The simulation toolkit's errors (re-exported by :mod:`devnet.testing`).

:class:`SimulationError` and its kinds: something the simulation itself could not do, a
machine too slow for the scenario's timings, or a condition that did not hold in time; and
:func:`machine_load`, the load average a :class:`MachineTooSlow` message ends with.
"""

from __future__ import annotations

import os

__all__ = [
    "MachineTooSlow",
    "MeshTimeout",
    "NodeCrashed",
    "SimulationError",
    "UnsupportedFault",
    "machine_load",
]


class SimulationError(Exception):
    """Something the simulation itself could not do (not a claim about the mesh)."""


class UnsupportedFault(SimulationError):
    """A fault that this kind of node, or this network layout, cannot carry out."""


class NodeCrashed(SimulationError):
    """A node's task ended with an exception nobody asked for."""


class MachineTooSlow(SimulationError):
    """The machine could not run the scenario at the speed its timings assume."""


class MeshTimeout(SimulationError, AssertionError):
    """A condition did not hold within its bound (on a machine that kept up)."""


def machine_load() -> str:
    """The machine's load average and what to do about it ("" where there is none)."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return ""
    return (
        f"Load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} core(s): "
        "use fewer nodes, a larger CHORUS_MESH_TIME_SCALE, or an idle machine."
    )
