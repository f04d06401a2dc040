"""A discrete-event simulator of the health mesh on its real pure core (issue 15).

``python -m devnet.simulator --nodes 1000 --loss 0.01 --scenario crash --seed 1`` prints a
table; ``run(Settings(...))`` returns the ``Result`` behind a row. Modules, one concern each:
``events`` (virtual time), ``network`` (links, TCP loss, partitions), ``overlay``
(GossipSub), ``keys`` (real signed envelopes), ``node`` (the adapter's logic around the
node's own ``ClusterView``), ``cluster`` (hosts and kernels), ``scenarios``, ``report``.
"""

from __future__ import annotations

from devnet.simulator.scenarios import SCENARIOS, Result, Settings, build, run

__all__ = ["SCENARIOS", "Result", "Settings", "build", "run"]
