"""GossipSub v1.1's flood publishing, for our urgent notices only.

py-libp2p 0.8.1 sends a message we originate to our mesh peers on the topic and nobody
else. A node that joined a moment ago is in few meshes yet (a full peer prunes it back to
D at its next heartbeat), so a suspicion notice reached it through gossip repair, one
IHAVE/IWANT round per heartbeat: 0.5-0.7 s late in 20-node traces, the last of every node
to see a kill. go-libp2p sends its own messages to every topic peer (``WithFloodPublish``,
on by default); we do that for the few messages whose delay costs a verdict (suspicion
notices, refutations, leave notices), and leave the idle digests and probes on the mesh.

Which publish floods is a context variable, set by the publisher around its
``publish`` call: py-libp2p's ``Pubsub.publish`` reaches the router's
``_get_peers_to_send`` in the same task, and no other task sees the flag.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar

from libp2p.peer.id import ID
from libp2p.pubsub import floodsub
from libp2p.pubsub.gossipsub import GossipSub

__all__ = ["MAX_FLOOD_PEERS", "FloodingGossipSub", "flooding"]

# Past the mesh, the most topic peers one flooded publish goes to. A node is connected to
# every member up to a few dozen (meetings and DHT lookups); the cap bounds what one
# notice costs in a large cluster, where the mesh and gossip still carry it to the rest.
MAX_FLOOD_PEERS = 32

_FLOOD: ContextVar[bool] = ContextVar("chorus_flood_publish", default=False)


@contextlib.contextmanager
def flooding() -> Iterator[None]:
    """Publishes of ours inside this block go to every topic peer (at most
    ``MAX_FLOOD_PEERS`` past the mesh), not only to the mesh."""
    token = _FLOOD.set(True)
    try:
        yield
    finally:
        _FLOOD.reset(token)


class FloodingGossipSub(GossipSub):
    """GossipSub that floods our own messages published inside :func:`flooding`.

    ``member(peer_id)``, if set, says which topic peers are members of our view: past the
    cap they go first, so that identities minted by the dozen and never admitted to the
    view cannot take the places."""

    member: Callable[[str], bool] | None = None

    def _get_peers_to_send(
        self,
        topic_ids: Iterable[str],
        msg_forwarder: ID,
        origin: ID,
        msg_id: bytes | None = None,
    ) -> Iterable[ID]:
        topics = list(topic_ids)
        chosen = set(super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id))
        pubsub = self.pubsub
        # Only what we originate: a forwarded message keeps GossipSub's fan-out, or one
        # peer's notice would make every node flood it again.
        if not _FLOOD.get() or pubsub is None or not origin == msg_forwarder == pubsub.my_id:
            return chosen
        extra: set[ID] = set()
        for topic in topics:
            extra.update(
                peer
                for peer in pubsub.peer_topics.get(topic, ())
                if self.peer_protocol.get(peer) not in (None, floodsub.PROTOCOL_ID)
                and not self._gated(peer, topic)
            )
        extra -= chosen | {origin}
        if len(extra) > MAX_FLOOD_PEERS:
            pool = random.sample(list(extra), len(extra))
            member = self.member
            if member is not None:
                pool.sort(key=lambda peer: not member(peer.to_base58()))  # stable: members first
            extra = set(pool[:MAX_FLOOD_PEERS])
        return chosen | extra

    def _gated(self, peer: ID, topic: str) -> bool:
        scorer = self.scorer
        return scorer is not None and (
            not scorer.allow_gossip(peer, [topic]) or scorer.is_graylisted(peer, [topic])
        )
