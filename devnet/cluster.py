"""A local devnet: N chorus-health nodes as separate OS processes on 127.0.0.1.

Everything about one run lives in one folder (default ``.devnet/run``), so that a second
terminal can act on a devnet that the first one started::

    state.json       node index -> pid, ports, peer id, data dir, log path; the extra node
                     flags; the pid of the ``up`` process that owns the run
    state.lock       flock'd around every read-modify-write of state.json
    node1/           node 1's --data-dir: identity.key, so a restart keeps its peer id
    logs/node1.log   node 1's stdout and stderr (JSON lines, --log-format json)

Node i bootstraps to node i-1, so nodes start one after another: a node is started once
the previous one has logged its listen address. Starting them all at once would be quicker
on paper, but on two cores twenty Python start-ups take longer than the bounded bootstrap
retries (about 3 s), and a node that misses its bootstrap peer stays alone for good.

Ports: the first start of a node uses port 0 for HTTP and libp2p, and the ports it bound
are read back from its "serving health endpoints" log line (never a race with another
program grabbing a port we picked). A restart reuses the same ports, so the addresses the
other nodes were given stay valid.

Processes: every node runs in its own session, so Ctrl-C in the terminal reaches only the
``up`` process, which then stops all nodes with SIGTERM (a graceful leave) and escalates to
SIGKILL after a bound. Nodes started by ``up`` also get PR_SET_PDEATHSIG=SIGTERM, so they
leave even if ``up`` itself is killed. A pid in state.json is only signalled while the
process's start time still matches the recorded one (pids get reused).

Layout: this module is the public face, :class:`Devnet` and every name the commands, the
benchmarks and the tests import. Devnet is assembled from parts of one concern each over
the shared state of :mod:`devnet.cluster_state`: start-up (:mod:`devnet.cluster_startup`),
looking (:mod:`devnet.cluster_waits`), breaking and stopping (:mod:`devnet.cluster_faults`).
The run folder is in :mod:`devnet.cluster_state`, the settings in
:mod:`devnet.cluster_settings`, the errors in :mod:`devnet.cluster_errors`, process checks
in :mod:`devnet.cluster_procs`, the views and their agreement in :mod:`devnet.cluster_views`
and the network namespaces in :mod:`devnet.cluster_netns`. Every name is still importable
from here.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The devnet's parts live in the devnet.cluster_* modules; every name this module defined
# before the split is imported back (``X as X``: explicit re-export), so
# ``from devnet.cluster import ...`` keeps working.
from adapters.client import ClusterView, PeerView
from devnet.cluster_errors import DevnetError, NotConverged, UsageError
from devnet.cluster_netns import NetnsNet as NetnsNet
from devnet.cluster_procs import Proc
from devnet.cluster_procs import _create_time as _create_time
from devnet.cluster_procs import pdeathsig_preexec as pdeathsig_preexec
from devnet.cluster_procs import proc_state as proc_state
from devnet.cluster_procs import process_of as process_of
from devnet.cluster_settings import DEFAULT_DIR
from devnet.cluster_settings import DEFAULT_PROBE_INTERVAL as DEFAULT_PROBE_INTERVAL
from devnet.cluster_settings import HTTP_TIMEOUT as HTTP_TIMEOUT
from devnet.cluster_settings import KILL_TIMEOUT as KILL_TIMEOUT
from devnet.cluster_settings import MAX_GROUPS as MAX_GROUPS
from devnet.cluster_settings import PR_SET_PDEATHSIG as PR_SET_PDEATHSIG
from devnet.cluster_settings import PROBE_SECONDS_PER_NODE as PROBE_SECONDS_PER_NODE
from devnet.cluster_settings import REPO_ROOT as REPO_ROOT
from devnet.cluster_settings import SERVING as SERVING
from devnet.cluster_settings import START_TIMEOUT as START_TIMEOUT
from devnet.cluster_settings import STOP_TIMEOUT as STOP_TIMEOUT
from devnet.cluster_settings import TCP_PORT as TCP_PORT
from devnet.cluster_settings import default_probe_interval as default_probe_interval
from devnet.cluster_startup import _Startup
from devnet.cluster_startup import _tail as _tail
from devnet.cluster_state import NodeRecord, RunDir, RunState
from devnet.cluster_state import _DevnetState as _DevnetState
from devnet.cluster_views import NOT_ALIVE as NOT_ALIVE
from devnet.cluster_views import Agreement, Glance, Snapshot, agreement
from devnet.cluster_views import _ask_cluster as _ask_cluster
from devnet.cluster_views import _disagreement as _disagreement
from devnet.cluster_views import get_json as get_json
from devnet.cluster_views import light_view as light_view
from devnet.cluster_waits import _Looking

__all__ = [
    "DEFAULT_DIR",
    "Agreement",
    "ClusterView",
    "Devnet",
    "DevnetError",
    "Glance",
    "NodeRecord",
    "NotConverged",
    "PeerView",
    "Proc",
    "RunDir",
    "RunState",
    "Snapshot",
    "UsageError",
    "agreement",
]


# --------------------------------------------------------------------------------- Devnet


class Devnet(_Startup, _Looking):
    """The devnet in one run folder: the API behind ``python -m devnet``.

    Every method reads state.json afresh, so two ``Devnet`` objects on the same folder (two
    terminals) see each other's changes.
    """

    def __init__(
        self,
        root: Path | str = DEFAULT_DIR,
        *,
        python: str = sys.executable,
        die_with_parent: bool = False,
    ) -> None:
        self.run = RunDir(root)
        self.python = python
        self.die_with_parent = die_with_parent
        # Nodes this object started: only their parent can reap them (and learn the exit
        # code); until then a killed child is a zombie, which proc_state counts as exited.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="devnet-http")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
