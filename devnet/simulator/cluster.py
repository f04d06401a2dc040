"""The simulated cluster: nodes, the network between them, and what kernels do.

This module is the libp2p host and the kernel of every node: it opens connections (a
handshake of a few round trips, then both sides hear ``connected``), closes them when a
process dies or exits (each peer hears ``disconnected`` one link delay later: the FIN or
reset), answers dial-backs (refused where nothing listens any more, open where a process
lives or is frozen, no answer across a partition) and carries pings and pulls. Everything
a node receives goes through ``SimNode.run``, so a frozen node holds it and a starved one
runs it late.

In a sampled run (``full`` given) only the nodes of ``full`` are ``SimNode``s with a view;
the others are ``LightNode``s (``devnet.simulator.light``), the same to this kernel.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Collection

from adapters.gossip_tuning import GossipTuning
from devnet.simulator.events import EventLoop
from devnet.simulator.kernel import Life
from devnet.simulator.keys import identity, shared_verifier
from devnet.simulator.light import LightNode
from devnet.simulator.network import LinkModel, Network
from devnet.simulator.node import SimNode
from devnet.simulator.overlay import GossipParams, Packet, Router
from mesh.cluster_config import ClusterConfig
from mesh.cluster_transitions import Transition
from mesh.snapshot_codec import PullAsk, pull_request

__all__ = ["Cluster", "Host", "Observer"]

WALL0 = 1_790_000_000.0  # the virtual epoch: wire dates must look like real Unix times
HANDSHAKE_RTTS = 3  # TCP, multistream-select + Noise, yamux + identify
PING_BYTES = 32
# py-libp2p's Kademlia (libp2p/kad_dht/common.py): k and the lookup's concurrency.
KAD_K = 20
KAD_ALPHA = 10

Observer = Callable[[int, Transition], None]
Host = SimNode | LightNode


class _Wire:
    """The routers' view of the cluster (``overlay.Wire``)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def send(
        self,
        src: int,
        dst: int,
        kind: str,
        size: int,
        action: Callable[[Router], None],
        count: int = 1,
    ) -> None:
        self._cluster.send(src, dst, kind, size, lambda node: action(node.router), count)

    def now(self) -> float:
        return self._cluster.loop.now


class Cluster:
    def __init__(
        self,
        n: int,
        *,
        seed: int,
        config: ClusterConfig,
        tuning: GossipTuning,
        params: GossipParams,
        link: LinkModel,
        ping_interval: float,
        ping_timeout: float,
        ping_floor: float | None = None,
        one_host: bool = False,
        full: Collection[int] | None = None,
    ) -> None:
        # Every node at one IP (the devnet's 127.0.0.1): meetings go one host at a time.
        self.one_host = one_host
        self.rng = random.Random(seed)
        self.loop = EventLoop()
        self.net = Network(self.loop, link, random.Random(self.rng.random()), n)
        self.wire = _Wire(self)
        self.wall0 = WALL0
        self.verifier = shared_verifier()
        self.observers: list[Observer] = []
        self._kad_keys: dict[int, int] = {}
        self._mid = 0
        # Every node, by index; ``nodes`` are those with a view (all, unless sampled).
        self.hosts: list[Host] = []
        keep = None if full is None else frozenset(full)
        for i in range(n):
            # One draw each, full or light: a sample keeps the unsampled run's seeds.
            rng = random.Random(self.rng.random())
            args = (i, self, identity(seed, i), config, tuning, params, rng)
            if keep is None or i in keep:
                self.hosts.append(SimNode(*args, ping_interval, ping_timeout, ping_floor))
            else:
                self.hosts.append(LightNode(*args, ping_interval, ping_timeout, n))
        self.nodes = [host for host in self.hosts if isinstance(host, SimNode)]
        self._index = {node.peer_id: node.index for node in self.hosts}

    # --- naming ----------------------------------------------------------------------------

    def peer_id(self, index: int) -> str:
        return self.hosts[index].peer_id

    def index_of(self, peer_id: str) -> int:
        return self._index[peer_id]

    def packet(self, origin: int, raw: bytes) -> Packet:
        self._mid += 1
        return Packet(self._mid, origin, raw)

    def observe(self, observer: int, event: Transition) -> None:
        for watch in self.observers:
            watch(observer, event)

    # --- carrying --------------------------------------------------------------------------

    def send(
        self,
        src: int,
        dst: int,
        kind: str,
        size: int,
        action: Callable[[Host], None],
        count: int = 1,
    ) -> None:
        node = self.hosts[dst]
        self.net.send(src, dst, kind, size, lambda: self._arrive(node, action), count)

    def _arrive(self, node: Host, action: Callable[[Host], None]) -> None:
        if node.lag > 0:
            node.later(0.0, lambda: action(node))
        else:
            node.run(lambda: action(node))

    def connect(self, a: int, b: int) -> None:
        """``a`` dials ``b``; both hear of the connection once the handshake is done."""
        if b in self.hosts[a].connected or not self._listening(b):
            return
        delay = HANDSHAKE_RTTS * 2 * self.net.base_delay(a, b)
        if not self.net.reachable(a, b):
            return
        self.loop.later(delay, lambda: self._connected(a, b))

    def _connected(self, a: int, b: int) -> None:
        if self._listening(a) and self._listening(b) and self.net.reachable(a, b):
            self.hosts[a].run(lambda: self.hosts[a].on_connected(b))
            self.hosts[b].run(lambda: self.hosts[b].on_connected(a))

    def kad_refresh(self, a: int) -> None:
        """The routing-table refresh a node runs once its bootstrap dial succeeded
        (``P2PNode._bootstrap``): a lookup of its own key, which dials the ``KAD_K`` peers
        closest to it by XOR distance, ``KAD_ALPHA`` at a time, one request round trip
        apart. In a cluster of 20 or fewer it links the newcomer to everyone; those links
        are dial-back targets like any other. Simplified: the lookup knows every live node
        at once (it learns them from the responses in a few rounds)."""
        own = self.kad_key(a)
        others = [b for b in range(len(self.hosts)) if b != a and self._listening(b)]
        others.sort(key=lambda b: own ^ self.kad_key(b))
        for rank, b in enumerate(others[:KAD_K]):
            rounds = 1 + rank // KAD_ALPHA
            delay = rounds * 2 * self.net.base_delay(a, b)
            self.loop.later(delay, functools.partial(self.connect, a, b))

    def kad_key(self, index: int) -> int:
        """A node's Kademlia key (the SHA-256 of its id, as a number for XOR distance)."""
        key = self._kad_keys.get(index)
        if key is None:
            key = int.from_bytes(hashlib.sha256(self.peer_id(index).encode()).digest(), "big")
            self._kad_keys[index] = key
        return key

    def wire_up(self, a: int, b: int) -> None:
        """An established connection (warm start), no handshake."""
        self.hosts[a].wired(b)
        self.hosts[b].wired(a)

    def _listening(self, index: int) -> bool:
        return self.hosts[index].life in (Life.UP, Life.FROZEN)

    def exit(self, index: int, life: Life) -> None:
        """The process ends: its kernel closes every connection (peers hear it one link
        delay later) and refuses dials from now on."""
        node = self.hosts[index]
        node.life = life
        for peer in sorted(node.connected):
            self.net.signal(index, peer, functools.partial(self._hear_close, peer, index))
        node.connected.clear()

    def _hear_close(self, peer: int, gone: int) -> None:
        node = self.hosts[peer]
        node.run(functools.partial(node.on_disconnected, gone))

    def freeze(self, index: int) -> None:
        self.hosts[index].life = Life.FROZEN

    # --- kernels' answers ------------------------------------------------------------------

    def dial(self, a: int, b: int, timeout: float, done: Callable[[int, bool], None]) -> None:
        """A plain TCP connect from ``a`` to ``b``: refused (True) where nothing listens."""
        node = self.hosts[a]
        if not self.net.reachable(a, b):
            node.later(timeout, lambda: done(b, False))
            return
        rtt = self.net.delay(a, b) + self.net.delay(b, a)
        refused = not self._listening(b)
        node.later(min(rtt, timeout), lambda: done(b, refused and rtt < timeout))

    def meet(self, a: int, b: int, timeout: float, done: Callable[[bool], None]) -> None:
        """A meeting: ``a`` dials ``b`` as a libp2p connection; ``done(True)`` once both
        sides hold it, ``done(False)`` when refused or after ``timeout``."""
        node = self.hosts[a]
        state = {"open": True}

        def finish(ok: bool) -> None:
            if state["open"]:
                state["open"] = False
                done(ok)

        if b in node.connected:
            node.later(0.0, lambda: finish(True))
            return
        if self.net.reachable(a, b) and self._listening(b):
            delay = HANDSHAKE_RTTS * 2 * self.net.base_delay(a, b)
            self.loop.later(delay, lambda: self._connected(a, b))
            node.later(delay, lambda: finish(b in node.connected))
        elif self.net.reachable(a, b):
            rtt = self.net.delay(a, b) + self.net.delay(b, a)
            node.later(min(rtt, timeout), lambda: finish(False))
        node.later(timeout, lambda: finish(False))

    def ping(
        self,
        a: int,
        b: int,
        timeout: float,
        done: Callable[[bool], None],
        early: float | None = None,
        clean_for: float = 0.0,
    ) -> None:
        """A libp2p ping over the open connection: answered if ``b``'s process runs in time.
        With ``early``, failed from then on once ``b``'s kernel has the ping, ``a`` has not
        retransmitted to ``b`` for ``clean_for`` and ``a`` is not behind itself
        (adapters/tcp_witness.py)."""
        state = {"open": True}
        node = self.hosts[a]
        landed: list[bool] = []

        def witness() -> None:
            if not state["open"]:
                return
            last = self.net.retransmitted.get((a, b))
            clean = last is None or self.loop.now - last >= clean_for
            if landed and clean and node.lag == 0:
                expire()
            elif early is not None:
                node.later(early, witness)

        def answered(_: Host) -> None:
            if state["open"]:
                state["open"] = False
                timer.cancel()
                done(True)

        def expire() -> None:
            if state["open"]:
                state["open"] = False
                done(False)

        timer = node.later(timeout, expire)
        if early is not None and early < timeout:
            node.later(early, witness)
        target = self.hosts[b]

        def arrive() -> None:
            landed.append(True)  # in b's kernel: acknowledged, whether b runs or not
            self._arrive(target, lambda peer: self.send(b, a, "ping", PING_BYTES, answered))

        self.net.send(a, b, "ping", PING_BYTES, arrive)

    def pull(self, a: int, b: int, ask: PullAsk, done: Callable[[bytes | None], None]) -> None:
        """One page of ``b``'s view, as ``ask`` asks; ``done(None)`` when refused or
        unanswered."""
        state = {"open": True}
        tuning = self.hosts[a].tuning

        def answer(server: Host) -> None:
            data = (
                server.pulls.serve(a, ask) if isinstance(server, SimNode) else server.serve(a, ask)
            )
            self.send(b, a, "pull", len(data) if data else 0, lambda _: finish(data))

        def finish(data: bytes | None) -> None:
            if state["open"]:
                state["open"] = False
                done(data)

        self.send(a, b, "pull", len(pull_request(ask.after, ask.summary)), answer)
        self.hosts[a].later(tuning.pull_timeout, lambda: finish(None))
