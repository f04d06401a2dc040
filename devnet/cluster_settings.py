"""The devnet's settings (re-exported by :mod:`devnet.cluster`): where a run lives, the
probe interval by size, the time bounds of start, stop and view requests, and the node's
log line that tells its endpoints.
"""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_DIR = Path(".devnet/run")
REPO_ROOT = Path(__file__).resolve().parents[1]

# Network probes every 15 s: a devnet shows probe results within seconds of starting (the
# first run is due 2 s after start), and the seven network checks stay a small part of a
# node's load. At 5 s they cost each node of a 10-node devnet ~9 % of a core, more than
# everything else together (2026-11-28), and twenty nodes saturated two cores.
DEFAULT_PROBE_INTERVAL = 15.0
# Beyond 10 nodes the default grows by this much per node. Each probe costs other nodes
# work (a DHT probe is a lookup, 3 stores and 3 reads; it stored at all k = 20 until
# 2026-12-04, which these figures were measured with), so at a fixed
# interval the machine's total probe load grows with n squared; spacing probes as n grows
# keeps it level. At 20 nodes on two cores, 15 s kept every node's pings failing and the
# devnet never converged; 30 s converged in 3.5 s at 6 % of a core per node (2026-11-28).
PROBE_SECONDS_PER_NODE = 1.5


def default_probe_interval(n: int) -> float:
    """The devnet's probe interval for ``n`` nodes when none is given."""
    return max(DEFAULT_PROBE_INTERVAL, PROBE_SECONDS_PER_NODE * n)


# Seconds a node may take from exec to logging its endpoints. One node takes about 1 s
# alone; twenty starting on two busy cores have been seen to take several.
START_TIMEOUT = 30.0
# A graceful stop must fit in the node's own shutdown_timeout (30 s) plus its watchdog
# (10 s); beyond that the node is broken and gets SIGKILL.
STOP_TIMEOUT = 45.0
KILL_TIMEOUT = 10.0
# Per-request timeout when asking nodes for their view. A frozen node accepts the
# connection (the kernel does) and never answers; this bounds how long a table waits.
HTTP_TIMEOUT = 1.5

# The node's INFO line (adapters/node.py) with its peer id, HTTP port and libp2p addresses.
SERVING = re.compile(
    r"node (?P<peer>\w+) serving health endpoints on http://(?P<host>[\d.]+):(?P<port>\d+),"
    r" libp2p on (?P<addrs>[^\"\n]+)"
)
TCP_PORT = re.compile(r"/tcp/(\d+)")

PR_SET_PDEATHSIG = 1
MAX_GROUPS = 10  # groups a partition may have (bridges dn<tag>b1..b9)
