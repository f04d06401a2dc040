"""Start and run one py-libp2p 0.8.1 node: host, GossipSub and Kademlia, hardened.

``open_p2p_node(cfg)`` is an async context manager that yields a running :class:`P2PNode`
and closes it cleanly on exit. ``run_p2p_node`` wraps it for ``nursery.start``.

Every workaround below cites /work/shared/reference/py-libp2p-notes.md ("notes"), by
section. In short: Noise + Yamux only, one connection per peer (saves 250 ms a dial),
Pubsub created before any connection, GossipSub heartbeat set explicitly (default
120 s), a validator for our DHT namespace, bootstrap peers added to the routing table by
hand, round-robin liveness pings of our own (adapters/pinger.py; the only thing that notices
a frozen peer), no replay of GossipSub's message cache to new peers, our
own ``host.close()`` before leaving ``host.run()``, and a Pubsub that survives hostile
frames instead of dying with them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import multiaddr  # type: ignore[import-untyped]  # ships no py.typed
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair as create_ed25519_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.identity_utils import load_identity
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from adapters import record_cache, yamux_credit
from adapters.dht import DEFAULT_MAX_VALUE_SIZE, NAMESPACE, HealthRecordValidator, LibP2PDHT
from adapters.dht_record_guard import DEFAULT_RECORD_TTL
from adapters.pinger import LinkPinger
from adapters.pubsub import LibP2PPubSub

__all__ = [
    "GOSSIPSUB_PROTOCOLS",
    "GuardedPubsub",
    "P2PConfig",
    "P2PError",
    "P2PNode",
    "PeerListener",
    "load_or_create_identity",
    "open_p2p_node",
    "quiet_libp2p_logging",
    "run_p2p_node",
]

logger = logging.getLogger(__name__)

# Standard ids only, newest first: CHORUS peers are go-libp2p (notes, "Other
# implementations"). py-libp2p's /meshsub/1.3.0+ extensions are left out on purpose.
GOSSIPSUB_PROTOCOLS: tuple[TProtocol, ...] = (PROTOCOL_ID_V11, PROTOCOL_ID)

PeerListener = Callable[[str], None]


class P2PError(Exception):
    """The libp2p edge cannot start or do what was asked (bad config, corrupt key file)."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class P2PConfig:
    """Everything one node needs. Times in seconds, sizes in bytes."""

    # Ed25519 identity, libp2p protobuf format. Created 0600 on first start, then reused
    # so the peer id survives restarts.
    key_file: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9000  # 0 = ephemeral (tests, devnet); read the real one back
    # /ip4/<ip>/tcp/<port>/p2p/<peer id>; parsed up front so a typo fails at start.
    bootstrap: tuple[str, ...] = ()
    # Bounded bootstrap: per peer at most this many dials, delays doubling from the
    # initial backoff up to the cap, and all of it within the deadline.
    bootstrap_max_attempts: int = 5
    bootstrap_initial_backoff: float = 0.2
    bootstrap_max_backoff: float = 5.0
    bootstrap_deadline: float = 30.0
    dial_timeout: float = 5.0
    # After bootstrap, a bootstrap peer we are not connected to (it was frozen, restarted,
    # or a failed ping aborted our connection) is dialled again, first after
    # redial_interval, backing off to redial_max_backoff while it stays unreachable. Without
    # this, a peer that returns is never reconnected: nothing else re-dials.
    redial_interval: float = 2.0
    redial_max_backoff: float = 30.0

    # GossipSub. py-libp2p's default heartbeat is 120 s (notes, "Building a node"): a mesh
    # would take minutes to form. Every message costs each node one delivery per mesh peer
    # (D), and py-libp2p spends about a millisecond of Python per RPC: with go-libp2p's
    # D=6 (Dlo=5, Dhi=12) a 10-node devnet spent ~10 % of a core per node on 4 digests a
    # second. D=4 keeps two spare paths per node and cut that by a third (2026-11-28).
    gossip_heartbeat_interval: float = 1.0
    # D=3 (Dlo=2, Dhi=4) cut the digest copies a node sends by about a third at 10 idle
    # nodes (devnet/cost_breakdown.py, 2026-12-02), but full meshes of 4 pruned newcomers
    # and a node back from starvation, which then heard and was heard by nobody for a
    # minute of PRUNE backoff (tests/sim: test_starved_node_..., test_rogue, 2026-12-02).
    gossip_degree: int = 4
    gossip_degree_low: int = 3
    gossip_degree_high: int = 6
    # Offered GossipSub versions, best first. Not 1.2: py-libp2p 0.8.1 sends an IDONTWANT
    # to every mesh peer for every message it receives, where go-libp2p does so only above
    # 1 KiB. Our digests are ~400 bytes, so 1.2 only doubled the RPCs (10 % -> 6 % of a
    # core per node at 10 nodes without it). Peers offering 1.2 settle on 1.1.
    gossip_protocols: tuple[str, ...] = GOSSIPSUB_PROTOCOLS
    # py-libp2p stops forwarding (but still delivers) messages beyond this many a second
    # per forwarding peer and topic, and penalizes the forwarder's score. A forwarder
    # relays the whole topic, so its default of 10 capped the cluster's topic at 10
    # messages a second: at 20 nodes a burst of suspicions passed it, digests stopped
    # spreading, silence raised more suspicions, and the devnet never converged
    # (2026-11-28). The gossip service bounds each signer instead (GossipTuning.signer_rate).
    gossip_forward_limit: float = 200.0
    # py-libp2p's "adaptive gossip" stretches the heartbeat to 30-60 s whenever its own
    # network-health estimate drops (gossipsub.py, _adapt_heartbeat_parameters): a loaded
    # mesh would stop repairing itself exactly when it needs to. Off.
    gossip_adaptive: bool = False
    # Bounds one inbound RPC frame. py-libp2p's default is 1 MiB, and a 1 MiB frame of
    # tiny messages stalled a node for 5.5 s (notes, "Hostile input"). Our digests are
    # well under 4 KiB, so 64 KiB is many messages' worth.
    max_inbound_rpc_size: int = 64 * 1024

    # Liveness pings (adapters/pinger.py, instead of py-libp2p's health monitor, whose
    # cost grows with n squared): one ping every ping_interval to the next connected peer.
    # A failure is reported to the cluster view, which suspects the peer; the suspicion is
    # gossiped, and confirmed, refuted or timed out like any other. The timeout must
    # tolerate a busy peer and a lossy link: 1 s failed healthy pings on a loaded 10-node
    # devnet (make bench, 2026-11-28), and with a 1.5 s suspicion it made live nodes dead
    # under 20 % packet loss (2026-12-02).
    # abort_connection_on_ping_failure also closes the connection, as py-libp2p's monitor
    # did; off, because on a loaded machine every missed ping then cost a reconnect
    # (Noise handshake, identify, GossipSub and DHT state), which made more pings miss: a
    # 20-node devnet never converged with it. A killed peer's connection is
    # closed by its kernel anyway, and a frozen one's stays open until it wakes up.
    enable_link_pings: bool = True
    ping_interval: float = 0.5
    ping_timeout: float = 2.0
    abort_connection_on_ping_failure: bool = False
    # One long-lived ping stream per connection (LinkPinger.reuse_streams): a new stream
    # per ping cost ~20 TCP segments per ping, a third of an idle node's packets.
    ping_reuse_streams: bool = True

    # py-libp2p's connection manager dials every peer in its peerstore (learned from
    # the DHT and identify) while it has fewer than 50 to 100 connections: a full mesh
    # for any mesh we run, and full meshes churn GossipSub (notes, "GossipSub"). Off by
    # default: topology comes from bootstrap and explicit connects (not in the notes;
    # source: libp2p/network/auto_connector.py).
    auto_connect: bool = False

    dht_max_value_size: int = DEFAULT_MAX_VALUE_SIZE
    dht_peer_timeout: float = 5.0
    # Seconds our namespace's records are kept (adapters/dht_record_guard.py,
    # DEFAULT_RECORD_TTL): must outlast the 3 newest probe records the replication check
    # re-reads.
    dht_record_ttl: float = DEFAULT_RECORD_TTL
    # Set the libp2p loggers to WARNING (Kademlia's to ERROR) on start (notes: noisy).
    quiet_libp2p_logs: bool = True
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_file", Path(self.key_file))
        object.__setattr__(self, "bootstrap", tuple(self.bootstrap))
        if not 0 <= self.listen_port <= 65535:
            raise P2PError(f"listen_port {self.listen_port} is not in 0..65535")
        if not 0 < self.gossip_degree_low <= self.gossip_degree <= self.gossip_degree_high:
            raise P2PError(
                "gossip degrees must satisfy 0 < low <= degree <= high, got "
                f"{self.gossip_degree_low}/{self.gossip_degree}/{self.gossip_degree_high}"
            )
        if self.bootstrap_max_attempts < 1:
            raise P2PError("bootstrap_max_attempts must be at least 1")
        for name in (
            "gossip_heartbeat_interval",
            "gossip_forward_limit",
            "ping_interval",
            "ping_timeout",
            "dial_timeout",
            "bootstrap_deadline",
            "dht_peer_timeout",
            "dht_record_ttl",
            "redial_interval",
        ):
            if getattr(self, name) <= 0:
                raise P2PError(f"{name} must be positive, got {getattr(self, name)}")
        for addr in self.bootstrap:
            _parse_peer_addr(addr, "bootstrap address")

    @property
    def listen_multiaddr(self) -> multiaddr.Multiaddr:
        proto = "ip6" if ":" in self.listen_host else "ip4"
        return multiaddr.Multiaddr(f"/{proto}/{self.listen_host}/tcp/{self.listen_port}")


def _parse_peer_addr(addr: str, what: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise P2PError(
            f"{what} {addr!r} is not a multiaddr like /ip4/127.0.0.1/tcp/9001/p2p/<peer id>"
        ) from exc


# ------------------------------------------------------------------------- identity


def load_or_create_identity(key_file: Path) -> KeyPair:
    """Load the node's Ed25519 key, or create it (mode 0600) if the file does not exist.

    Raises P2PError for a key file that is corrupt, not Ed25519, or open to group or others.
    """
    if key_file.exists():
        return _load_identity(key_file)
    key_pair = create_ed25519_key_pair()
    data = key_pair.private_key.serialize()
    tmp: Path | None = None
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write then rename, so a crash mid-write never leaves a half key behind that
        # the next start would reject as corrupt. The temp name is new each time, so a
        # temp file left by a crash never gets in the way.
        path = _temp_key_path(key_file)
        # O_EXCL: never reuse a file someone placed at the temp path (it could be a
        # hard link to another file); O_NOFOLLOW: never write through a symlink there.
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        tmp = path  # ours from here on, so ours to remove if anything below fails
        try:
            os.fchmod(fd, 0o600)  # the umask may not strip what O_CREAT's mode keeps
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path, key_file)
        tmp = None
        _fsync_dir(key_file.parent)
    except OSError as exc:
        raise P2PError(f"cannot create identity key file {key_file}: {exc}") from exc
    finally:
        if tmp is not None:
            # Made by us and never renamed: a stray private key helps nobody.
            with contextlib.suppress(OSError):
                tmp.unlink()
    logger.info("created new identity %s in %s", ID.from_pubkey(key_pair.public_key), key_file)
    return key_pair


def _temp_key_path(key_file: Path) -> Path:
    return key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}.tmp")


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory is: otherwise a power cut could bring
    # back a directory without the key, and the node a new peer id.
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_identity(key_file: Path) -> KeyPair:
    try:
        mode = stat.S_IMODE(key_file.stat().st_mode)
    except OSError as exc:
        raise P2PError(f"identity key file {key_file} is unreadable ({exc})") from exc
    # Refused, not warned about: whoever could read the key may already hold this peer's
    # identity, and whoever could write it may have put theirs in. Only the operator can
    # tell, so the node stops (exit code 2 through ConfigError) before reading it.
    if mode & 0o077:
        raise P2PError(
            f"identity key file {key_file} has mode {mode:04o}, so group or others can read "
            f"or write it; the node refuses it: run chmod 600 {key_file}"
        )
    try:
        key_pair = load_identity(key_file)
    except (OSError, ValueError) as exc:
        raise P2PError(
            f"identity key file {key_file} is unreadable or corrupt ({exc}); restore it, or "
            "delete it to start with a new peer id"
        ) from exc
    if key_pair.private_key.get_type() != KeyType.Ed25519:
        raise P2PError(
            f"identity key file {key_file} holds a {key_pair.private_key.get_type().name} "
            "key; this node uses Ed25519 only"
        )
    return key_pair


# ------------------------------------------------------------------- hostile input


def _is_shutdown_race(exc: BaseException) -> bool:
    # notes, "Building a node": shutting down while messages flow raises this out of
    # Pubsub.continuously_read_stream.
    return isinstance(exc, RuntimeError) and "Nursery is closed to new arrivals" in str(exc)


def _without_shutdown_race(exc: BaseException) -> BaseException | None:
    """``exc`` minus the shutdown-race errors in it; None if nothing else is left."""
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(_is_shutdown_race)
        return rest
    return None if _is_shutdown_race(exc) else exc


class GuardedPubsub(Pubsub):
    """A Pubsub whose inbound paths catch, count and drop what they cannot handle.

    In plain py-libp2p an exception escaping a stream handler ends the whole node. Its
    reader does not catch protobuf's DecodeError, and a message whose sender id is not an
    identity multihash, with a garbage key, makes signature verification raise inside
    ``push_msg`` (notes, "Hostile input"). Here both are contained.

    ``drops`` counts by reason: ``undecodable_rpc`` (the stream is reset; the peer's
    other streams and its pubsub state stay) and ``invalid_message`` (that one message is
    dropped). ``on_drop(reason)`` is called for each, for metrics.
    """

    def __init__(
        self,
        host: IHost,
        router: GossipSub,
        *,
        on_drop: Callable[[str], None] | None = None,
        strict_signing: bool = True,
        max_inbound_rpc_size: int,
    ) -> None:
        super().__init__(
            host, router, strict_signing=strict_signing, max_inbound_rpc_size=max_inbound_rpc_size
        )
        self.drops: Counter[str] = Counter()
        self._on_drop = on_drop

    def _count_drop(self, reason: str) -> None:
        self.drops[reason] += 1
        if self._on_drop is not None:
            try:
                self._on_drop(reason)
            except Exception:
                logger.exception("on_drop callback failed")

    async def stream_handler(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().stream_handler(stream)
        except Exception as exc:
            if _is_shutdown_race(exc):
                logger.debug("pubsub reader for %s stopped by shutdown", peer_id)
                return
            self._count_drop("undecodable_rpc")
            logger.warning("dropped pubsub stream from %s: %r", peer_id, exc)
            # Only the offending stream goes. Unlike the library's ParseError path we do
            # not forget the peer's subscriptions: that would silently stop our traffic
            # to a peer that is otherwise fine.
            with contextlib.suppress(Exception):
                await stream.reset()

    async def _replay_recent_messages(self, peer_id: ID, topic: str) -> None:
        # py-libp2p 0.8.1 sends every newly subscribed peer the whole message cache, one
        # RPC per message (gossipsub.send_recent_messages). Every reconnect paid for it: at
        # 20 nodes under load it was a fifth of a node's CPU (py-spy, 2026-11-28). A new
        # peer gets the cluster's state from the view pull (/chorus/health-view/1.0.0) in
        # one message, and an old probe is worth nothing to it.
        await trio.lowlevel.checkpoint()

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if msg_forwarder == self.my_id:
            # Our own publish: a failure here is ours and the caller should see it.
            await super().push_msg(msg_forwarder, msg)
            return
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:
            if _is_shutdown_race(exc):
                return
            self._count_drop("invalid_message")
            logger.warning("dropped a pubsub message forwarded by %s: %r", msg_forwarder, exc)


# --------------------------------------------------------------------- peer events

# Addresses of a digest looked at for a dial-back target.
MAX_ADVERTISED = 8
# Peers whose dialled address and IP we remember (newest kept): a few hundred bytes each.
MAX_DIALLED_PEERS = 4096


def _remember(table: OrderedDict[ID, Any], peer_id: ID, value: Any) -> None:
    table[peer_id] = value
    table.move_to_end(peer_id)
    while len(table) > MAX_DIALLED_PEERS:
        table.popitem(last=False)


def _closing(conn: object) -> bool:
    event = getattr(conn, "event_closed", None)
    return bool(event is not None and event.is_set())


def _hook_connection_close() -> None:
    """Have ``SwarmConn.close`` tell its swarm's ``chorus_on_closing`` first (see
    _PeerEvents). Class-wide and once: py-libp2p binds the method per connection."""
    from libp2p.network.connection.swarm_connection import SwarmConn

    original = SwarmConn.close
    if getattr(original, "chorus_hooked", False):
        return

    async def close(self: SwarmConn) -> None:
        if not self.event_closed.is_set():
            hook = getattr(self.swarm, "chorus_on_closing", None)
            if hook is not None:
                try:
                    hook(self)
                except Exception:  # the close must go on whatever a listener does
                    logger.exception("connection-closing hook failed")
        await original(self)

    close.chorus_hooked = True  # type: ignore[attr-defined]
    SwarmConn.close = close  # type: ignore[method-assign]


class _PeerEvents(INotifee):
    """Turns per-connection notifications into per-peer connected/disconnected calls.

    py-libp2p notifies a closed connection about 200 ms after it closed (it closes the
    muxer, resets the streams, then sleeps 0.1 s: SwarmConn._cleanup); we hear of it when
    the close begins instead (``closing``, called from the patched ``SwarmConn.close``),
    which is most of the time a killed peer takes to be suspected. A frozen peer's
    connection stays open: LinkPinger finds it.
    """

    def __init__(self, network: INetwork) -> None:
        self._network = network
        self._live: set[ID] = set()
        self.on_connected: list[PeerListener] = []
        self.on_disconnected: list[PeerListener] = []
        # peer -> (ip, port) where our last outbound connection to it was authenticated:
        # an address of its own listener that we saw answer as that peer, unlike the
        # addresses it advertises (a digest could aim our dial-backs anywhere).
        self.dialled: OrderedDict[ID, tuple[str, int]] = OrderedDict()
        # peer -> the IP its last authenticated connection (either way) came from.
        self.seen_ip: OrderedDict[ID, str] = OrderedDict()

    def _fire(self, listeners: list[PeerListener], peer_id: ID) -> None:
        for listener in list(listeners):
            try:
                listener(peer_id.to_base58())
            except Exception:
                logger.exception("peer listener %r failed for %s", listener, peer_id)

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        await trio.lowlevel.checkpoint()
        peer_id = conn.muxed_conn.peer_id
        self._remember_dialled(peer_id, conn)
        if _closing(conn):
            return  # closed before we got here: closing() had nothing to undo
        if peer_id not in self._live:
            self._live.add(peer_id)
            self._fire(self.on_connected, peer_id)

    def _remember_dialled(self, peer_id: ID, conn: INetConn) -> None:
        try:
            host, port = conn.muxed_conn.secured_conn.get_remote_address()  # type: ignore[attr-defined]
        except Exception:  # not a TCP connection we can name
            return
        _remember(self.seen_ip, peer_id, str(host))
        if str(getattr(conn, "direction", "")) == "outbound":
            _remember(self.dialled, peer_id, (str(host), int(port)))

    def closing(self, conn: INetConn) -> None:
        """``conn`` began to close: if it was the peer's last open one, it is gone."""
        peer_id = conn.muxed_conn.peer_id
        others = [
            other
            for other in self._network.connections.get(peer_id, ())
            if other is not conn and not _closing(other)
        ]
        if peer_id in self._live and not others:
            self._live.discard(peer_id)
            self._fire(self.on_disconnected, peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        await trio.lowlevel.checkpoint()
        peer_id = conn.muxed_conn.peer_id
        # The swarm drops the connection before notifying; another one may remain.
        if peer_id in self._live and not self._network.connections.get(peer_id):
            self._live.discard(peer_id)
            self._fire(self.on_disconnected, peer_id)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


# -------------------------------------------------------------------------- the node


class P2PNode:
    """A running node. Obtain it from :func:`open_p2p_node`."""

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
        self._events = _PeerEvents(host.get_network())
        self.pinger = LinkPinger(
            host.get_network(),
            interval=cfg.ping_interval,
            timeout=cfg.ping_timeout,
            abort=cfg.abort_connection_on_ping_failure,
            reuse_streams=cfg.ping_reuse_streams,
        )
        # Set once every bootstrap address has been dialled or given up on; then
        # bootstrap_results maps each address to the peer id reached, or None.
        self.bootstrap_done = trio.Event()
        self.bootstrap_results: dict[str, str | None] = {}

    @property
    def listen_addrs(self) -> list[str]:
        """Bound listen addresses with the real port and a /p2p/ suffix."""
        return [f"{addr}/p2p/{self.peer_id}" for addr in self.host.get_transport_addrs()]

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

    def dial_back_target(self, peer: str, advertised: Sequence[str]) -> tuple[str, int] | None:
        """Where a dial-back of ``peer`` may go (adapters/dialback.py): where we dialled
        and authenticated it ourselves; else, of the TCP addresses it ``advertised``, one
        at the very IP its authenticated connection to us came from, so a digest can aim
        our dials at no host but its own. None if neither."""
        dialled = self.dialled_address(peer)
        if dialled is not None:
            return dialled
        try:
            ip = self._events.seen_ip.get(ID.from_base58(peer))
        except Exception:  # not a peer id
            return None
        if ip is None:
            return None
        for addr in advertised[:MAX_ADVERTISED]:
            parts = addr.split("/")
            # ['', 'ip4', ip, 'tcp', port, 'p2p', peer]
            if len(parts) == 7 and parts[1] in ("ip4", "ip6") and parts[2] == ip:
                if parts[3] == "tcp" and parts[5] == "p2p" and parts[6] == peer:
                    if parts[4].isdigit() and 0 < int(parts[4]) < 65536:
                        return ip, int(parts[4])
        return None

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
        info = _parse_peer_addr(addr, "peer address")
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

    async def _bootstrap(self) -> None:
        try:
            with trio.move_on_after(self.cfg.bootstrap_deadline) as scope:
                async with trio.open_nursery() as nursery:
                    for addr in self.cfg.bootstrap:
                        nursery.start_soon(self._bootstrap_one, addr)
            if scope.cancelled_caught:
                logger.warning("bootstrap deadline of %.1fs passed", self.cfg.bootstrap_deadline)
            reached = [a for a, pid in self.bootstrap_results.items() if pid is not None]
            if self.cfg.bootstrap:
                logger.info(
                    "bootstrap: reached %d of %d peers", len(reached), len(self.cfg.bootstrap)
                )
            if reached:
                # Learn the bootstrap peers' neighbours, and tell them about us: they add
                # a peer to their table when it sends them a DHT request.
                with trio.move_on_after(self.cfg.bootstrap_deadline):
                    await self.kad.refresh_routing_table()
        finally:
            for addr in self.cfg.bootstrap:
                self.bootstrap_results.setdefault(addr, None)
            self.bootstrap_done.set()
        await self._keep_bootstrap_peers()

    async def _keep_bootstrap_peers(self) -> None:
        """Re-dial bootstrap peers that dropped, one dial per peer per backoff period."""
        backoff = dict.fromkeys(self.cfg.bootstrap, self.cfg.redial_interval)
        due = {addr: trio.current_time() + self.cfg.redial_interval for addr in backoff}
        while backoff:
            await trio.sleep_until(min(due.values()))
            connected = set(self.connected_peers())
            for addr in backoff:
                if due[addr] > trio.current_time():
                    continue
                if _parse_peer_addr(addr, "bootstrap address").peer_id.to_base58() in connected:
                    backoff[addr] = self.cfg.redial_interval
                else:
                    try:
                        await self.connect(addr)
                    except P2PError as exc:
                        logger.debug("re-dial of %s failed: %s", addr, exc.__cause__ or exc)
                        backoff[addr] = min(backoff[addr] * 2, self.cfg.redial_max_backoff)
                    else:
                        logger.info("reconnected to bootstrap peer %s", addr)
                        backoff[addr] = self.cfg.redial_interval
                due[addr] = trio.current_time() + backoff[addr]

    async def _bootstrap_one(self, addr: str) -> None:
        delay = self.cfg.bootstrap_initial_backoff
        for attempt in range(1, self.cfg.bootstrap_max_attempts + 1):
            try:
                peer_id = await self.connect(addr)
            except P2PError as exc:
                logger.info(
                    "bootstrap dial %d/%d to %s failed: %s",
                    attempt,
                    self.cfg.bootstrap_max_attempts,
                    addr,
                    exc.__cause__ or exc,
                )
            else:
                logger.info("bootstrap: connected to %s", addr)
                self.bootstrap_results[addr] = peer_id
                return
            if attempt < self.cfg.bootstrap_max_attempts:
                await trio.sleep(delay)
                delay = min(delay * 2, self.cfg.bootstrap_max_backoff)
        logger.warning(
            "bootstrap: gave up on %s after %d attempts", addr, self.cfg.bootstrap_max_attempts
        )
        self.bootstrap_results[addr] = None


async def read_to_eof(stream: INetStream, limit: int) -> bytes | None:
    """The stream's bytes up to EOF, or None when the sender goes over ``limit``."""
    buf = bytearray()
    while True:
        try:
            chunk = await stream.read(limit + 1 - len(buf))
        except StreamEOF:
            return bytes(buf)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None


# ---------------------------------------------------------------------------- start


def quiet_libp2p_logging(level: int = logging.WARNING) -> None:
    """libp2p loggers to ``level``; Kademlia's to ERROR: it warns "Failed to read DHT
    message from stream" on every stream close (notes, "Building a node").

    libp2p's own setup turns propagation off, so its records bypass the application's
    handlers and land on logging's last-resort stderr handler; turn it back on."""
    root = logging.getLogger("libp2p")
    root.setLevel(level)
    root.propagate = True
    # This one pins itself to INFO at import and logs every auto-connect cycle.
    logging.getLogger("libp2p.network.auto_connector").setLevel(level)
    logging.getLogger("libp2p.kad_dht.kad_dht").setLevel(max(level, logging.ERROR))


def _build_host(cfg: P2PConfig, key_pair: KeyPair) -> IHost:
    # Signed peer records are verified once, not on every RPC (adapters/record_cache.py).
    record_cache.install()
    # WINDOW_UPDATEs only when half the window is used, as go-yamux (adapters/yamux_credit.py).
    yamux_credit.install()
    connection_config = ConnectionConfig(
        # One connection per peer: a successful dial otherwise waits 250 ms for nothing
        # (notes, "Building a node").
        max_connections_per_peer=1,
        dial_timeout=cfg.dial_timeout,
        # Our LinkPinger replaces py-libp2p's monitor (see P2PConfig.enable_link_pings).
        enable_health_monitoring=False,
    )
    # Noise and Yamux only: the defaults also offer TLS, SECIO, plaintext and Mplex.
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[cfg.listen_multiaddr],
        connection_config=connection_config,
    )


@contextlib.asynccontextmanager
async def open_p2p_node(
    cfg: P2PConfig, *, on_drop: Callable[[str], None] | None = None
) -> AsyncIterator[P2PNode]:
    """Start a node, yield it once it listens (bootstrap continues in the background;
    wait on ``node.bootstrap_done`` if you need it), and close it on exit.

    ``on_drop(reason)`` is called for each hostile or broken pubsub input dropped.
    Raises P2PError for a bad key file or an address that cannot be bound.
    """
    if cfg.quiet_libp2p_logs:
        quiet_libp2p_logging()
    key_pair = load_or_create_identity(cfg.key_file)
    host = _build_host(cfg, key_pair)
    gossipsub = GossipSub(
        protocols=list(cfg.gossip_protocols),
        degree=cfg.gossip_degree,
        degree_low=cfg.gossip_degree_low,
        degree_high=cfg.gossip_degree_high,
        heartbeat_interval=cfg.gossip_heartbeat_interval,  # type: ignore[arg-type]
        max_messages_per_topic_per_second=cfg.gossip_forward_limit,
        adaptive_gossip_enabled=cfg.gossip_adaptive,
    )
    # Before any connection: Pubsub registers the notifee that tells it about new peers
    # (notes, "Building a node"). Strict signing is py-libp2p's default; we pin it.
    guarded = GuardedPubsub(
        host,
        gossipsub,
        on_drop=on_drop,
        strict_signing=True,
        max_inbound_rpc_size=cfg.max_inbound_rpc_size,
    )
    validator = HealthRecordValidator(cfg.dht_max_value_size)
    # strict_validation: keys outside a registered namespace are refused, so peers cannot
    # park arbitrary data with us (notes, "Hostile input").
    kad = KadDHT(host, DHTMode.SERVER, strict_validation=True)
    kad.register_validator(NAMESPACE, validator)
    # Before the host listens: its record guard must see every PUT a peer sends.
    dht = LibP2PDHT(
        kad, validator, peer_timeout=cfg.dht_peer_timeout, record_ttl=cfg.dht_record_ttl
    )

    body_error: list[BaseException] = []
    try:
        async with host.run(listen_addrs=[cfg.listen_multiaddr]):
            try:
                # A listen failure (port in use, bad address) is only logged by
                # py-libp2p; the host would run on, reachable by nobody.
                if not host.get_transport_addrs():
                    raise P2PError(
                        f"cannot listen on {cfg.listen_multiaddr} (port in use or address "
                        "not local?)"
                    )
                async with (
                    background_trio_service(guarded),
                    background_trio_service(gossipsub),
                    background_trio_service(kad),
                    trio.open_nursery() as nursery,
                ):
                    await guarded.wait_until_ready()
                    if not cfg.auto_connect:
                        await _stop_auto_connector(host)
                    pubsub = LibP2PPubSub(guarded, nursery)
                    node = P2PNode(cfg, host, guarded, kad, pubsub, dht)
                    host.get_network().register_notifee(node._events)
                    _hook_connection_close()
                    host.get_network().chorus_on_closing = node._events.closing  # type: ignore[attr-defined]
                    nursery.start_soon(node._bootstrap)
                    if cfg.enable_link_pings:
                        nursery.start_soon(node.pinger.run)
                    logger.info("p2p node %s listening on %s", node.peer_id, node.listen_addrs)
                    try:
                        yield node
                    except BaseException as exc:
                        body_error.append(exc)
                        raise
                    finally:
                        # Stop our own tasks (publishers, readers, bootstrap) first, then
                        # close the host ourselves, before the services stop: leaving
                        # host.run() does not close the listener (notes, "Building a node").
                        nursery.cancel_scope.cancel()
                        sockets = _tcp_sockets(host)
                        await _close_host(host, cfg.close_timeout)
                        _close_sockets(sockets)
            finally:
                await _close_host(host, cfg.close_timeout)  # no-op when already closed
    except BaseException as exc:
        tidy = _tidy_exit_error(exc, body_error)
        if tidy is None:
            logger.debug("contained a pubsub shutdown race: %r", exc)
            return
        if tidy is exc:
            raise
        raise tidy from tidy.__cause__


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _tidy_exit_error(exc: BaseException, body_error: list[BaseException]) -> BaseException | None:
    """What should leave ``open_p2p_node``: None for only shutdown-race errors; the
    caller's own exception, or our P2PError, unwrapped from trio's nursery groups when it
    is all there is (the nurseries here would otherwise turn ``raise ValueError`` in the
    ``async with`` body into an ExceptionGroup)."""
    rest = _without_shutdown_race(exc)
    if rest is None:
        return None
    leaves = _leaves(rest)
    if len(leaves) == 1 and (
        isinstance(leaves[0], P2PError) or (body_error and leaves[0] is body_error[0])
    ):
        return leaves[0]
    return rest


async def _stop_auto_connector(host: IHost) -> None:
    """Stop the swarm's auto-connector (see ``P2PConfig.auto_connect``).

    The swarm starts it from its own run task; stopping it earlier would be undone, so
    wait (bounded) until it has started. ``_started`` is private; ``stop()`` is not.
    """
    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is None:
        return
    with trio.move_on_after(2.0):
        while not getattr(connector, "_started", True):  # noqa: ASYNC110 (no event to wait on)
            await trio.sleep(0.005)
    await connector.stop()


def _tcp_sockets(host: IHost) -> list[trio.SocketStream]:
    """The TCP streams under the host's connections (swarm conn -> muxer -> security ->
    raw connection -> trio stream; found by a bounded walk, not by py-libp2p's private
    attribute names)."""
    found: list[trio.SocketStream] = []
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [
        (conn, 0) for conns in host.get_network().connections.values() for conn in conns
    ]
    while todo:
        obj, depth = todo.pop()
        if id(obj) in seen or depth > 6:
            continue
        seen.add(id(obj))
        if isinstance(obj, trio.SocketStream):
            found.append(obj)
            continue
        for name in ("muxed_conn", "secured_conn", "conn", "read_writer", "stream", "_stream"):
            child = getattr(obj, name, None)
            if child is not None:
                todo.append((child, depth + 1))
    return found


def _close_sockets(sockets: list[trio.SocketStream]) -> None:
    # host.close() closes every connection, but when the node is stopped by cancellation
    # some TCP sockets stayed open (py-libp2p 0.8.1; seen in-process, 2026-11-28): the peer
    # never saw a disconnect, and a restarted node with the same id could not replace the
    # stale connection. Closing the socket itself is what a process exit would do.
    for stream in sockets:
        with contextlib.suppress(OSError):
            if stream.socket.fileno() != -1:
                stream.socket.close()


async def _close_host(host: IHost, grace: float) -> None:
    # Shielded: this runs while the surrounding scope may already be cancelled.
    with trio.CancelScope(shield=True), trio.move_on_after(grace) as scope:
        await host.close()
    if scope.cancelled_caught:
        logger.warning("host.close() did not finish within %.1fs", grace)


async def run_p2p_node(
    cfg: P2PConfig,
    *,
    on_drop: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[P2PNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``node = await nursery.start(run_p2p_node, cfg)``; runs until cancelled."""
    async with open_p2p_node(cfg, on_drop=on_drop) as node:
        task_status.started(node)
        await trio.sleep_forever()
