"""What a simulated node and its parts see of each other and of the cluster around them.

``Cluster`` (``devnet.simulator.cluster``) builds the nodes and is their kernel: it opens
and closes connections, carries pings, pulls and meetings' dials, and knows every node by
index. A node (``devnet.simulator.node``) delegates its publishing and its meetings to
parts of its own. Each side is typed here by the little it uses of the other, so the
modules import one way: cluster -> node -> its parts -> this module.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from adapters.envelope import EnvelopeCache
from adapters.gossip_tuning import GossipTuning
from devnet.simulator.events import EventLoop, Timer
from devnet.simulator.keys import Identity
from devnet.simulator.network import Network
from devnet.simulator.overlay import Packet, Router, Wire
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Outcome
from mesh.cluster_transitions import Transition
from mesh.cluster_view import ClusterView
from mesh.sequencer import Sequencer
from mesh.signed import Envelope
from mesh.snapshot_codec import PullAsk

__all__ = ["Kernel", "Life", "NodeSide"]


class Life(StrEnum):
    DOWN = "down"  # not started yet
    UP = "up"
    FROZEN = "frozen"  # SIGSTOP: its kernel still accepts connections, nothing answers
    CRASHED = "crashed"  # killed: its kernel closed its sockets and refuses new ones
    LEFT = "left"  # stopped gracefully, process gone


class Kernel(Protocol):
    """The cluster as its nodes use it (read-only properties: a protocol's plain attributes
    would have to match their types exactly)."""

    @property
    def loop(self) -> EventLoop: ...
    @property
    def wire(self) -> Wire: ...
    @property
    def net(self) -> Network: ...
    @property
    def wall0(self) -> float: ...
    @property
    def one_host(self) -> bool: ...
    @property
    def verifier(self) -> EnvelopeCache: ...

    def peer_id(self, index: int) -> str: ...
    def index_of(self, peer_id: str) -> int: ...
    def observe(self, observer: int, event: Transition) -> None: ...
    def packet(self, origin: int, raw: bytes) -> Packet: ...
    def exit(self, index: int, life: Life) -> None: ...
    def dial(self, a: int, b: int, timeout: float, done: Callable[[int, bool], None]) -> None: ...
    def ping(
        self,
        a: int,
        b: int,
        timeout: float,
        done: Callable[[bool], None],
        early: float | None = None,
        clean_for: float = 0.0,
    ) -> None: ...
    def pull(self, a: int, b: int, ask: PullAsk, done: Callable[[bytes | None], None]) -> None: ...
    def meet(self, a: int, b: int, timeout: float, done: Callable[[bool], None]) -> None: ...


class NodeSide(Protocol):
    """A node as its parts (``Publisher``, ``MeetingDesk``, ``SimPulls``) use it."""

    index: int
    peer_id: str
    cluster: Kernel
    ident: Identity
    config: ClusterConfig
    tuning: GossipTuning
    view: ClusterView
    router: Router
    sequencer: Sequencer | None
    connected: set[int]
    rejected: dict[str, int]
    rng: random.Random

    @property
    def now(self) -> float: ...
    @property
    def wall(self) -> float: ...
    def later(self, delay: float, action: Callable[[], None]) -> Timer: ...
    def handle(self, outcome: Outcome) -> None: ...
    def verify(self, raw: bytes) -> Envelope | None: ...
    def arm_tick(self) -> None: ...
