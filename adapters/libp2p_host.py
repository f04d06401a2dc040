"""Start and run one py-libp2p 0.8.1 node: host, GossipSub and Kademlia, hardened.

``open_p2p_node(cfg)`` is an async context manager that yields a running
:class:`~adapters.p2p_node.P2PNode` and closes it cleanly on exit. ``run_p2p_node`` wraps
it for ``nursery.start``.

Every workaround cites /work/shared/reference/py-libp2p-notes.md ("notes"), by section.
In short: Noise + Yamux only, one connection per peer (saves 250 ms a dial), Pubsub
created before any connection, GossipSub heartbeat set explicitly (default 120 s), a
validator for our DHT namespace, bootstrap peers added to the routing table by hand
(``adapters/p2p_bootstrap.py``), round-robin liveness pings of our own
(``adapters/pinger.py``; the only thing that notices a frozen peer), no replay of
GossipSub's message cache to new peers, our own ``host.close()`` before leaving
``host.run()`` (``adapters/host_teardown.py``), and a Pubsub that survives hostile frames
instead of dying with them (``adapters/guarded_pubsub.py``). The settings are
``adapters/p2p_config.py``'s, the identity ``adapters/p2p_identity.py``'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.kad_dht.kad_dht import DHTMode
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from adapters import record_cache, yamux_credit
from adapters.dht import HealthRecordValidator, LibP2PDHT
from adapters.flood_publish import FloodingGossipSub
from adapters.guarded_pubsub import GuardedPubsub
from adapters.host_teardown import close_host, close_sockets, tcp_sockets, tidy_exit_error
from adapters.lean_records import LeanKadDHT
from adapters.p2p_config import P2PConfig, P2PError
from adapters.p2p_identity import load_or_create_identity
from adapters.p2p_node import P2PNode
from adapters.ping_responder import PingResponder
from adapters.pubsub import LibP2PPubSub
from probes.ports import NAMESPACE

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's own annotations for mypy; its
    # TaskStatus is the same protocol as trio.TaskStatus.
    from trio_typing import TaskStatus

__all__ = ["open_p2p_node", "quiet_libp2p_logging", "run_p2p_node"]

logger = logging.getLogger(__name__)


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
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[cfg.listen_multiaddr],
        connection_config=connection_config,
    )
    # Before any connection: py-libp2p's responder drops a ping stream idle for 10 s,
    # which our round robin outlasts from 20 peers on (adapters/ping_responder.py).
    host.set_stream_handler(PING_PROTOCOL, PingResponder(idle=cfg.ping_stream_idle).handle)
    return host


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
    gossipsub = FloodingGossipSub(
        protocols=[TProtocol(protocol) for protocol in cfg.gossip_protocols],
        degree=cfg.gossip_degree,
        degree_low=cfg.gossip_degree_low,
        degree_high=cfg.gossip_degree_high,
        # py-libp2p annotates this as int, but only ever hands it to trio.sleep (seconds).
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
    kad = LeanKadDHT(host, DHTMode.SERVER, strict_validation=True)
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
                    node.watch_connections()
                    nursery.start_soon(node.run_bootstrap)
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
                        sockets = tcp_sockets(host)
                        await close_host(host, cfg.close_timeout)
                        close_sockets(sockets)
            finally:
                await close_host(host, cfg.close_timeout)  # no-op when already closed
    except BaseException as exc:
        tidy = tidy_exit_error(exc, body_error)
        if tidy is None:
            logger.debug("contained a pubsub shutdown race: %r", exc)
            return
        if tidy is exc:
            raise
        raise tidy from tidy.__cause__


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


async def run_p2p_node(
    cfg: P2PConfig,
    *,
    on_drop: Callable[[str], None] | None = None,
    task_status: TaskStatus[P2PNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``node = await nursery.start(run_p2p_node, cfg)``; runs until cancelled."""
    async with open_p2p_node(cfg, on_drop=on_drop) as node:
        task_status.started(node)
        await trio.sleep_forever()
