"""Flood publishing of our urgent notices, over real py-libp2p hosts on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters import flood_publish
from adapters.flood_publish import flooding
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from adapters.p2p_node import P2PNode
from tests.adapters import Inbox, WaitUntil, in_mesh

MakeConfig = Callable[..., P2PConfig]
TOPIC = "t"
# Heartbeats far past the test's length: no IHAVE gossip and no mesh repair can carry a
# message to a peer outside the mesh while we look.
SLOW = {"gossip_heartbeat_interval": 60.0}


def _unmesh(node: P2PNode) -> None:
    """Empty ``node``'s mesh on the topic, as a full peer's heartbeat prune does to a
    newcomer (the peers stay connected and subscribed)."""
    router = node.guarded_pubsub.router
    router.mesh[TOPIC].clear()  # type: ignore[attr-defined]


def _targets(node: P2PNode, origin: P2PNode) -> set[str]:
    """Whom ``node``'s router would send a message of ``origin``'s to, right now."""
    router = node.guarded_pubsub.router
    me = origin.host.get_id()
    peers = router._get_peers_to_send([TOPIC], me, me)  # type: ignore[attr-defined]
    return {peer.to_base58() for peer in peers}


@pytest.mark.network
async def test_an_urgent_publish_reaches_topic_peers_outside_the_mesh(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with open_p2p_node(p2p_config("a", **SLOW)) as a:
        boot = (a.listen_addrs[0],)
        async with (
            open_p2p_node(p2p_config("b", bootstrap=boot, **SLOW)) as b,
            open_p2p_node(p2p_config("c", bootstrap=boot, **SLOW)) as c,
        ):
            inboxes = {b.peer_id: Inbox(), c.peer_id: Inbox()}
            await a.pubsub.subscribe(TOPIC, Inbox())
            await b.pubsub.subscribe(TOPIC, inboxes[b.peer_id])
            await c.pubsub.subscribe(TOPIC, inboxes[c.peer_id])
            await wait_until(
                lambda: in_mesh(a, b, TOPIC) and in_mesh(a, c, TOPIC), what="a's mesh formed"
            )
            _unmesh(a)
            # A routine publish would go nowhere: the mesh is empty, gossip a minute away.
            assert _targets(a, a) == set()

            with flooding():
                # Another node's message keeps GossipSub's fan-out, flag or not: a node
                # does not flood what it forwards.
                assert _targets(a, b) == set()
                assert _targets(a, a) == {b.peer_id, c.peer_id}
                await a.pubsub.publish(TOPIC, b"urgent")
            await wait_until(
                lambda: all(inbox.data == [b"urgent"] for inbox in inboxes.values()),
                what="the urgent publish at both peers",
            )


@pytest.mark.network
async def test_past_the_cap_members_of_our_view_go_first(
    p2p_config: MakeConfig, wait_until: WaitUntil, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flood_publish, "MAX_FLOOD_PEERS", 1)
    async with open_p2p_node(p2p_config("a", **SLOW)) as a:
        boot = (a.listen_addrs[0],)
        async with (
            open_p2p_node(p2p_config("b", bootstrap=boot, **SLOW)) as b,
            open_p2p_node(p2p_config("c", bootstrap=boot, **SLOW)) as c,
        ):
            for node in (a, b, c):
                await node.pubsub.subscribe(TOPIC, Inbox())
            await wait_until(
                lambda: in_mesh(a, b, TOPIC) and in_mesh(a, c, TOPIC), what="a's mesh formed"
            )
            _unmesh(a)
            router = a.guarded_pubsub.router
            router.member = lambda peer: peer == c.peer_id  # type: ignore[attr-defined]
            with flooding():
                for _ in range(8):  # the draw among the two is random; the order is not
                    assert _targets(a, a) == {c.peer_id}
