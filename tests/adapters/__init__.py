"""Tests of the libp2p edge: adapters/libp2p_host.py, adapters/pubsub.py, adapters/dht.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.p2p_node import P2PNode
    from probes.ports import PubSubMessage

# The ``wait_until`` fixture's type (tests/adapters/conftest.py).
WaitUntil = Callable[..., Awaitable[None]]


def in_mesh(x: P2PNode, y: P2PNode, topic: str) -> bool:
    """Whether ``y`` is in ``x``'s GossipSub mesh for ``topic``.

    Tests wait on this, not on the subscription exchange, before a single publish: a
    publish goes only to the mesh, and IHAVE gossip skips mesh peers, so a message sent
    after subscriptions are known but before the graft reaches nobody. py-libp2p grafts
    at once on a subscription only from a peer it already knows speaks GossipSub; the
    heartbeat does the rest (a CI run lost a message that way).
    """
    mesh = x.guarded_pubsub.router.mesh  # type: ignore[attr-defined]
    return y.host.get_id() in mesh.get(topic, ())


class Inbox:
    """A handler that records what it gets; optionally raises on one payload."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.messages: list[PubSubMessage] = []
        self.fail_on = fail_on

    async def __call__(self, msg: PubSubMessage) -> None:
        if msg.data == self.fail_on:
            raise RuntimeError("handler bug")
        self.messages.append(msg)

    @property
    def data(self) -> list[bytes]:
        return [m.data for m in self.messages]
