"""A running libp2p node (:class:`P2PNode`): its adapters, its peers and its dials.

``adapters.libp2p_host.open_p2p_node`` builds and starts it; this module only holds what
the rest of the node calls on it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence

import trio
from libp2p.abc import IHost
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID

from adapters.dht import LibP2PDHT
from adapters.dial_targets import advertised_at, dialable_ip, is_loopback
from adapters.guarded_pubsub import GuardedPubsub
from adapters.link_timing import LinkTiming
from adapters.p2p_bootstrap import Bootstrapper
from adapters.p2p_config import P2PConfig, P2PError, parse_peer_addr
from adapters.peer_events import PeerEvents, PeerListener, hook_connection_close
from adapters.pinger import LinkPinger
from adapters.pubsub import LibP2PPubSub
from adapters.tcp_witness import KernelWitness

__all__ = ["P2PNode"]

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")


class P2PNode:
    """A running node. Obtain it from :func:`~adapters.libp2p_host.open_p2p_node`."""

    def __init__(
        self,
        cfg: P2PConfig,
        host: IHost,
        guarded: GuardedPubsub,
        kad: KadDHT,
        pubsub: LibP2PPubSub,
        dht: LibP2PDHT,
    ) -> None:
        self.cfg = cfg
        self.host = host  # for advanced use; prefer the adapters
        self.pubsub = pubsub
        self.dht = dht
        self.kad = kad
        self.guarded_pubsub = guarded
        self.peer_id: str = host.get_id().to_base58()
        self._events = PeerEvents(host.get_network())
        self.pinger = LinkPinger(
            host.get_network(),
            interval=cfg.ping_interval,
            timeout=cfg.ping_timeout,
            abort=cfg.abort_connection_on_ping_failure,
            reuse_streams=cfg.ping_reuse_streams,
        )
        floor = cfg.ping_timeout_floor
        if floor is not None or cfg.ping_network_awareness:
            self.pinger.timing = LinkTiming(
                floor=cfg.ping_timeout if floor is None else floor,
                ceiling=cfg.ping_timeout,
                slow=cfg.ping_slow_answer,
                measures=floor is not None,
            )
        if cfg.ping_early_after is not None:
            self.pinger.witness = KernelWitness(clean_for=cfg.ping_clean_for)
            self.pinger.early_after = cfg.ping_early_after
        self.pinger.patient_factor = cfg.ping_patient_factor
        self._bootstrapper = Bootstrapper(
            cfg, kad, connect=self.connect, connected_peers=self.connected_peers
        )
        # Set once every bootstrap address has been dialled or given up on; then
        # bootstrap_results maps each address to the peer id reached, or None.
        self.bootstrap_done = self._bootstrapper.done
        self.bootstrap_results: dict[str, str | None] = self._bootstrapper.results
        # Known before any dial: a pull may start as the connection opens, before the
        # dial that made it has returned and filled bootstrap_results.
        self.bootstrap_peers = frozenset(
            parse_peer_addr(addr, "bootstrap address").peer_id.to_base58() for addr in cfg.bootstrap
        )
        self._listen_addrs: tuple[str, ...] = ()

    def watch_connections(self) -> None:
        """Hear of peers' connections from now on (``add_peer_listener``); called once, by
        ``open_p2p_node``, before the node dials anyone."""
        network = self.host.get_network()
        network.register_notifee(self._events)
        hook_connection_close()
        # Our own attribute on py-libp2p's swarm, read by the patched SwarmConn.close.
        network.chorus_on_closing = self._events.closing  # type: ignore[attr-defined]

    async def run_bootstrap(self) -> None:
        """Dial the bootstrap peers, then re-dial those that drop, until cancelled."""
        await self._bootstrapper.run()

    @property
    def listen_addrs(self) -> list[str]:
        """Bound listen addresses with the real port and a /p2p/ suffix."""
        # Kept once bound: the publisher asks four times a second, and building them from
        # py-libp2p's multiaddrs was a fortieth of an idle node's CPU (py-spy, 2026-12-04).
        if not self._listen_addrs:
            found = self.host.get_transport_addrs()
            self._listen_addrs = tuple(f"{addr}/p2p/{self.peer_id}" for addr in found)
        return list(self._listen_addrs)

    @property
    def dropped_inbound(self) -> Counter[str]:
        """Hostile or broken pubsub input dropped so far, by reason."""
        return self.guarded_pubsub.drops

    def connected_peers(self) -> list[str]:
        return [pid.to_base58() for pid in self.host.get_connected_peers()]

    async def drop_peer(self, peer: str, *, timeout: float = 2.0) -> None:
        """Close our connections to ``peer`` (within ``timeout``); disconnect events follow."""
        try:
            pid = ID.from_base58(peer)
        except Exception:  # not a peer id
            return
        with trio.move_on_after(timeout), contextlib.suppress(Exception):
            await self.host.get_network().close_peer(pid)

    def dialled_address(self, peer: str) -> tuple[str, int] | None:
        """Where our last outbound connection to ``peer`` was authenticated, if any."""
        try:
            return self._events.dialled.get(ID.from_base58(peer))
        except Exception:  # not a peer id
            return None

    def dial_back_target(
        self, peer: str, advertised: Sequence[str], *, certified: bool = False
    ) -> tuple[str, int] | None:
        """Where a dial-back of ``peer`` may go (adapters/dialback.py): where we dialled
        and authenticated it ourselves; else, of the TCP addresses it ``advertised``, one
        at the very IP its authenticated connection to us came from, so a digest can aim
        our dials at no host but its own. A ``certified`` member (an admission policy's)
        we never met is dialled where it advertised, at a unicast IP (loopback only while
        we listen on loopback alone): the authority vouches for it. None if none of these."""
        dialled = self.dialled_address(peer)
        if dialled is not None:
            return dialled
        try:
            ip = self._events.seen_ip.get(ID.from_base58(peer))
        except Exception:  # not a peer id
            return None
        if ip is not None:
            return advertised_at(peer, advertised, lambda at: at == ip)
        if certified:
            return advertised_at(peer, advertised, self._may_dial)
        return None

    def _may_dial(self, ip: str) -> bool:
        # Loopback only while we listen on loopback alone: then the cluster is this host.
        ours = [addr.split("/")[2] for addr in self.listen_addrs if addr.count("/") >= 2]
        return dialable_ip(ip, loopback=bool(ours) and all(map(is_loopback, ours)))

    def responsive_peers(self) -> list[str]:
        """Connected peers, less those whose latest liveness ping went unanswered."""
        silent = self.pinger.unresponsive()
        return [peer for peer in self.connected_peers() if peer not in silent]

    def add_peer_listener(
        self,
        on_connected: PeerListener | None = None,
        on_disconnected: PeerListener | None = None,
    ) -> Callable[[], None]:
        """Call these with the base58 peer id when a peer's first connection opens or
        its last one closes. They run on the network's task: keep them quick (e.g. send
        into a channel). Returns a function that removes them again."""
        if on_connected is not None:
            self._events.on_connected.append(on_connected)
        if on_disconnected is not None:
            self._events.on_disconnected.append(on_disconnected)

        def remove() -> None:
            if on_connected in self._events.on_connected:
                self._events.on_connected.remove(on_connected)
            if on_disconnected in self._events.on_disconnected:
                self._events.on_disconnected.remove(on_disconnected)

        return remove

    def add_ping_failure_listener(self, listener: PeerListener) -> Callable[[], None]:
        """Call ``listener(peer_id)`` when a ping to a connected peer goes unanswered
        (not while this node is starved: set ``pinger.starved``). Same rules as
        :meth:`add_peer_listener`."""
        self.pinger.on_failure.append(listener)

        def remove() -> None:
            if listener in self.pinger.on_failure:
                self.pinger.on_failure.remove(listener)

        return remove

    async def connect(self, addr: str, *, retry_now: bool = False) -> str:
        """Dial ``/ip4/../tcp/../p2p/<id>``, add the peer to the DHT routing table and
        return its peer id. Raises P2PError if the dial fails.

        ``retry_now``: dial even if a dial to it failed recently. py-libp2p 0.8.1 refuses
        every dial to a peer for 60 s after one failed (``Swarm._negative_peer_cache``,
        network/swarm.py), which kept healed partitions apart for up to a minute; a redial
        of ours is already paced by its own backoff."""
        info = parse_peer_addr(addr, "peer address")
        if info.peer_id == self.host.get_id():
            raise P2PError(f"{addr} is this node's own address")
        if retry_now:
            cache = getattr(self.host.get_network(), "_negative_peer_cache", None)
            with contextlib.suppress(Exception):
                cache.evict(str(info.peer_id))  # type: ignore[union-attr]
        try:
            with trio.fail_after(self.cfg.dial_timeout):
                await self.host.connect(info)
        except Exception as exc:
            raise P2PError(f"cannot connect to {addr}: {exc!r}") from exc
        # Connecting does not put a peer in the routing table (notes, "Kademlia"). Our
        # peers all run the DHT in server mode; the server-mode check still runs if
        # identify has already told us otherwise.
        if not await self.kad.add_peer(info.peer_id):
            logger.info("peer %s was not added to the DHT routing table", info.peer_id)
        return info.peer_id.to_base58()
