"""A gossiping node in its own OS process, for tests that freeze (SIGSTOP) or kill it.

Usage: ``python -m tests.adapters.gossip_child KEY_FILE [BOOTSTRAP_ADDR ...]``. Prints
``<peer id> <listen addr>`` on one line once its GossipService runs, then runs until killed.
Timings are ClusterConfig.devnet(), like the in-process nodes of tests/adapters/test_gossip.py;
the event-loop lag monitor feeds ``starved``, as on a real node.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from prometheus_client import CollectorRegistry

from adapters.gossip import GossipService
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from mesh.cluster_config import devnet
from mesh.manager import CheckManager
from probes.loop_lag import LoopLagMonitor


async def main(key_file: Path, bootstrap: tuple[str, ...]) -> None:
    config = P2PConfig(key_file=key_file, listen_port=0, bootstrap=bootstrap)
    async with open_p2p_node(config) as node, trio.open_nursery() as nursery:
        lag = LoopLagMonitor()
        await nursery.start(lag.run)
        manager = CheckManager(node_id=node.peer_id, version="v-child")
        service = GossipService(
            node,
            manager,
            devnet(),
            registry=CollectorRegistry(),
            http_addr="http://127.0.0.1:1",
            starved=lambda: lag.starved,
        )
        await nursery.start(service.run)
        print(node.peer_id, node.listen_addrs[0], flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), tuple(sys.argv[2:]))
