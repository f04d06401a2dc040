"""The toolkit's hooks on each in-process node's host (a part of
:class:`~devnet.testing.MeshNetwork`): the partition gate on dials and connections, the
link-fault shaper on incoming pubsub messages, and the watch on failed pings between two
in-process nodes (a sign the shared event loop is too slow).
"""

from __future__ import annotations

import contextlib
import logging
import math
from functools import partial
from typing import Any

import trio

from devnet.sim_nodes import SimNode
from devnet.sim_state import _MeshState

# The toolkit logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.testing")


class _Hooks(_MeshState):
    """Instrumenting each life of an in-process node."""

    def _install_hooks(self, node: SimNode) -> None:
        """The partition gate and the link-fault shaper, on this life's host."""
        assert node.handle is not None
        p2p = node.handle.p2p
        # Concrete Swarm attributes (not in INetwork), replaced on this instance only.
        swarm: Any = p2p.host.get_network()
        me = node.peer_id
        if self.inprocess_ping_timeout is not None:
            # Read by the node's LinkPinger at every ping (adapters/pinger.py).
            p2p.pinger.timeout = self.inprocess_ping_timeout
        blocked = partial(self._blocked, node.name)
        original_dial = swarm.dial_peer
        original_add = swarm.add_conn

        async def dial_peer(peer_id: Any) -> Any:
            if blocked(peer_id.to_base58()):
                from libp2p.network.exceptions import SwarmException

                # Refused before any socket: py-libp2p's negative cache is not involved.
                raise SwarmException(f"{node.name}: {peer_id} is across a partition")
            return await original_dial(peer_id)

        async def add_conn(muxed_conn: Any, direction: str = "unknown") -> Any:
            if blocked(muxed_conn.peer_id.to_base58()):
                from libp2p.network.exceptions import SwarmException

                with contextlib.suppress(Exception):
                    await muxed_conn.close()
                raise SwarmException(f"{node.name}: connection across a partition refused")
            return await original_add(muxed_conn, direction)

        swarm.dial_peer = dial_peer
        swarm.add_conn = add_conn

        pubsub: Any = p2p.guarded_pubsub
        original_push = pubsub.push_msg

        async def push_msg(forwarder: Any, msg: Any) -> None:
            fault = self._link_faults.get((forwarder.to_base58(), me))
            if fault is not None:
                if fault.loss and self.rng.random() < fault.loss:
                    self.dropped_by_link_faults += 1
                    return
                if fault.delay:
                    # push_msg runs as a task per message: holding one holds no other.
                    await trio.sleep(fault.delay)
            await original_push(forwarder, msg)

        pubsub.push_msg = push_msg

        # Ping failures between two in-process nodes. Loopback loses nothing, so such a
        # failure means the shared event loop did not run the ping's few round trips
        # within the ping timeout: the machine is too slow, and the node has just
        # suspected a healthy peer.
        pinger = p2p.pinger
        original_ping = pinger.ping

        async def ping(conn: Any, timeout: float | None = None, early: float | None = None) -> bool:
            answered = await original_ping(conn, timeout, early)
            if not answered:
                self._note_ping_failure(node, conn.muxed_conn.peer_id.to_base58())
            return answered

        pinger.ping = ping  # type: ignore[method-assign]

    async def _cut_blocked_connections(self) -> None:
        from libp2p.peer.id import ID

        for node in self.live:
            if node.handle is None:
                continue
            swarm = node.handle.p2p.host.get_network()
            for peer in node.handle.p2p.connected_peers():
                if self._blocked(node.name, peer):
                    with contextlib.suppress(Exception):
                        await swarm.close_peer(ID.from_base58(peer))

    def _note_ping_failure(self, pinger: SimNode, peer_id: str) -> None:
        other = self.names().get(peer_id)
        if other is None or not pinger.live:
            return
        target = self.node(other)
        if target.process or not target.live or self._blocked(pinger.name, peer_id):
            return  # a frozen or starved process, a stopping node: expected failures
        self._spurious_pings.append((trio.current_time(), pinger.name, target.name))
        logger.warning(
            "simulation: ping %s -> %s failed between in-process nodes (event-loop lag up "
            "to %.2f s)",
            pinger.name,
            target.name,
            self._lag.max_lag,
        )

    def spurious_ping_failures(self, since: float = -math.inf) -> list[tuple[float, str, str]]:
        """Pings that failed between two live in-process nodes since ``since`` (trio
        time): (time, pinger, target). Each one made py-libp2p abort a healthy link."""
        return [entry for entry in self._spurious_pings if entry[0] >= since]
