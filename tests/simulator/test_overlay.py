"""The simulator's GossipSub router: which peers a publish goes to."""

from __future__ import annotations

import random
from collections.abc import Callable

from adapters.flood_publish import MAX_FLOOD_PEERS
from devnet.simulator.overlay import GossipParams, Packet, Router


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(
        self,
        src: int,
        dst: int,
        kind: str,
        size: int,
        action: Callable[[Router], None],
        count: int = 1,
    ) -> None:
        self.sent.append(dst)

    def now(self) -> float:
        return 0.0


def _router(connected: int, mesh: set[int]) -> tuple[Router, Recorder]:
    wire = Recorder()
    router = Router(0, wire, GossipParams(), random.Random(1), lambda _: True, lambda _: None)
    router.connected = set(range(1, connected + 1))
    router.mesh = set(mesh)
    return router, wire


def test_a_routine_publish_goes_to_the_mesh_only() -> None:
    router, wire = _router(10, {1, 2})
    router.publish(Packet(1, 0, b"x"))
    assert sorted(wire.sent) == [1, 2]


def test_a_flooded_publish_goes_to_every_connected_peer_up_to_the_cap() -> None:
    router, wire = _router(10, {1, 2})
    router.publish(Packet(1, 0, b"x"), flood=True)
    assert sorted(wire.sent) == list(range(1, 11))

    router, wire = _router(MAX_FLOOD_PEERS + 20, {1, 2})
    router.publish(Packet(2, 0, b"x"), flood=True)
    assert len(wire.sent) == 2 + MAX_FLOOD_PEERS
    assert {1, 2} <= set(wire.sent)
