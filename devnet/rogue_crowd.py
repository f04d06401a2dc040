"""Many identities, one connection each (issue 12): a stranger mints identities for free
and gives each a connection of its own. :func:`open_crowd` makes such a :class:`Crowd`
(bare hosts, each with a fresh key) that publishes probes signed by each identity over its
own connection, holds streams open from all of them, and stalls the negotiation of streams
the targets open back. Re-exported by :mod:`devnet.rogue`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from devnet.forge import Identity, mint, sign
from devnet.rogue_base import MAX_FLOOD, _peer_id
from devnet.rogue_held import MAX_HELD, HeldStreams, _held_streams
from probes.probe_wire import TOPIC as PROBE_TOPIC

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from trio_typing import TaskStatus

    # The node type from the layer below the toolkit (devnet.testing imports the rogue
    # peer, so importing devnet.testing back would close a circle).
    from devnet.sim_nodes import SimNode

# The rogue peer logs under one name, whichever part of it speaks.
logger = logging.getLogger("devnet.rogue")


MAX_CROWD = 256  # identities one crowd may have


class _StallingCommunicator:
    """A multistream-select communicator that never answers a proposal of ``protocols``:
    the dialler's negotiation hangs until its own timeout (py-libp2p: 30 s)."""

    def __init__(self, inner: Any, protocols: frozenset[str], crowd: Crowd) -> None:
        self._inner = inner
        self._protocols = protocols
        self._crowd = crowd

    async def read(self) -> str:
        command: str = await self._inner.read()
        if command in self._protocols:
            self._crowd._stalled()
            await self._crowd._released.wait()  # set when the crowd goes
        return command

    async def write(self, msg_str: str) -> None:
        await self._inner.write(msg_str)


@dataclass(frozen=True, slots=True)
class CrowdMember:
    """One identity of a :class:`Crowd`: a bare libp2p host (Noise, Yamux, no pubsub, no
    DHT, not listening) with a fresh Ed25519 key."""

    host: IHost
    identity: Identity

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


class Crowd:
    """Identities a stranger mints for free, each holding a libp2p connection of its own
    to the targets: what per-peer limits and per-origin budgets must withstand. Get one
    with :func:`open_crowd`.

    Each member can publish messages it signed itself straight to a target over its own
    GossipSub stream (:meth:`publish`, :meth:`flood_probes`), hold streams open
    (:meth:`hold_streams`), and stall the negotiation of streams the targets open to it
    (:meth:`stall`). Members do not speak the probe-answer protocol unless stalling it:
    an answer to them fails at once. Every loop is bounded by a count."""

    def __init__(self, members: list[CrowdMember], names: Mapping[str, str]) -> None:
        self.members = members
        self._names = dict(names)
        self.stalled = 0  # inbound stream negotiations stalled so far
        self.probes_written = 0  # by flood_probes, one per probe and target
        self._released = trio.Event()
        self._changed = trio.Event()
        # One GossipSub stream per (member, target), opened on first use.
        self._pubsub_streams: dict[tuple[str, str], INetStream] = {}

    @property
    def peer_ids(self) -> list[str]:
        return [m.peer_id for m in self.members]

    def _stalled(self) -> None:
        self.stalled += 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds, checked whenever a counter here changes
        (``stalled``, ``probes_written``); TooSlowError after ``timeout``."""
        with trio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def stall(self, protocol: str) -> None:
        """From now on every member accepts streams the targets open on ``protocol`` and
        never finishes negotiating them (until the crowd goes): an origin that asks for
        probe answers and never takes them."""
        protocols = frozenset({protocol})
        for member in self.members:
            muxer: Any = member.host.get_mux()
            original = muxer.negotiate

            async def negotiate(
                communicator: Any, negotiate_timeout: int = 30, *, _original: Any = original
            ) -> Any:
                wrapped = _StallingCommunicator(communicator, protocols, self)
                return await _original(wrapped, negotiate_timeout)

            muxer.negotiate = negotiate

    def probe(self, member: CrowdMember, responders: list[str], nonce: int) -> bytes:
        """A well-formed probe from ``member`` naming ``responders``."""
        from probes.probe_wire import ProbeMessage

        payload = nonce.to_bytes(8, "big")
        return ProbeMessage(
            nonce=f"{nonce:032x}",
            origin=member.peer_id,
            sent_at=time.time(),
            payload=payload,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            responders=tuple(responders),
        ).encode()

    async def publish(
        self, member: CrowdMember, target: SimNode | str, topic: str, data: bytes
    ) -> None:
        """``data`` on ``topic``, signed by ``member``, as one RPC frame on the member's
        own GossipSub stream to ``target`` (opened on first use): the target takes it as
        published by that identity, over that identity's connection."""
        await self._write(member, _peer_id(target), sign(member.identity, data, topic=topic))

    async def _write(self, member: CrowdMember, target_id: str, message: rpc_pb2.Message) -> None:
        key = (member.peer_id, target_id)
        stream = self._pubsub_streams.get(key)
        if stream is None:
            stream = await member.host.new_stream(ID.from_base58(target_id), [PROTOCOL_ID_V11])
            self._pubsub_streams[key] = stream
        frame = rpc_pb2.RPC(publish=[message]).SerializeToString()
        await stream.write(encode_varint_prefixed(frame))

    async def flood_probes(
        self,
        targets: list[SimNode | str],
        *,
        rounds: int,
        per_second: float,
        first_nonce: int = 1,
    ) -> int:
        """Every member probes, naming every target, ``per_second`` times a second for
        ``rounds`` rounds (the probes of a round spread evenly over it), each probe signed
        once and written to every target. Returns how many probes were written; a target that
        refuses a member's stream stops that member's probes to it."""
        if not (per_second > 0 and 0 <= rounds * len(self.members) <= MAX_FLOOD):
            raise ValueError(f"need per_second > 0 and at most {MAX_FLOOD} probes")
        responders = [_peer_id(t) for t in targets]
        count = rounds * len(self.members)
        gap = 1.0 / (per_second * len(self.members))
        started = trio.current_time()
        written = 0
        failed: set[tuple[str, str]] = set()
        for i in range(count):
            await trio.sleep_until(started + i * gap)
            member = self.members[i % len(self.members)]
            # One signed message to every target, as a publish would send it: the targets'
            # GossipSub takes a copy forwarded by another target as the same message.
            probe = self.probe(member, responders, first_nonce + i)
            message = sign(member.identity, probe, topic=PROBE_TOPIC)
            for target in responders:
                if (member.peer_id, target) in failed:
                    continue
                try:
                    await self._write(member, target, message)
                except Exception as exc:
                    failed.add((member.peer_id, target))
                    logger.info("crowd probes to %s stopped: %r", self._name(target), exc)
                    continue
                written += 1
                self.probes_written += 1
                self._notify()
        return written

    @asynccontextmanager
    async def hold_streams(
        self,
        target: SimNode | str,
        protocol: str,
        per_member: int,
        *,
        data: bytes = b"",
        timeout: float = 10.0,
    ) -> AsyncIterator[HeldStreams]:
        """:meth:`RoguePeer.hold_streams` from every member: ``per_member`` streams each
        (at most MAX_HELD in all), opened within ``timeout`` seconds, never finished. On
        exit the ones still open are reset."""
        if not 0 <= per_member * len(self.members) <= MAX_HELD:
            raise ValueError(f"need 0 <= per_member x members <= {MAX_HELD}")
        hosts = [member.host for member in self.members for _ in range(per_member)]
        async with _held_streams(hosts, _peer_id(target), protocol, data, timeout) as held:
            yield held

    def _name(self, target: SimNode | str) -> str:
        peer = _peer_id(target)
        return self._names.get(peer, peer)


def _bare_host() -> IHost:
    from libp2p import new_host
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux

    key_pair = mint().key_pair
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        # As our nodes: one connection per peer, no py-libp2p health monitor.
        connection_config=ConnectionConfig(
            max_connections_per_peer=1, enable_health_monitoring=False
        ),
    )


@asynccontextmanager
async def open_crowd(
    count: int,
    *,
    connect_to: Iterable[SimNode | str],
    names: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[Crowd]:
    """``count`` fresh identities (at most MAX_CROWD), each a bare libp2p host connected
    to every target in ``connect_to`` (simulation nodes or ``/p2p/`` multiaddrs) within
    ``timeout`` seconds; closed on exit."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr  # type: ignore[import-untyped]  # ships no py.typed

    if not 0 <= count <= MAX_CROWD:
        raise ValueError(f"need 0 <= count <= {MAX_CROWD}, got {count}")
    addrs = [t if isinstance(t, str) else t.p2p_addr for t in connect_to]
    body_error: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            # One task per host, all in one nursery: a failure in the body leaves in one
            # exception group (unwrapped below), not in one per host.
            hosts: list[IHost] = [await nursery.start(_run_bare_host) for _ in range(count)]
            crowd = Crowd([CrowdMember(h, Identity.of_host(h)) for h in hosts], names or {})
            try:
                with trio.fail_after(timeout):
                    for host in hosts:
                        for addr in addrs:
                            await host.connect(info_from_p2p_addr(Multiaddr(addr)))
                yield crowd
            except BaseException as exc:
                body_error.append(exc)
                raise
            finally:
                crowd._released.set()  # stalled negotiations give up
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    async with trio.open_nursery() as closing:
                        for host in hosts:
                            closing.start_soon(_close_quietly, host)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if body_error and len(leaves) == 1 and leaves[0] is body_error[0]:
            raise body_error[0] from None
        raise


async def _run_bare_host(*, task_status: TaskStatus[IHost]) -> None:
    host = _bare_host()
    async with host.run(listen_addrs=[]):
        task_status.started(host)
        await trio.sleep_forever()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _close_quietly(host: IHost) -> None:
    with contextlib.suppress(Exception):
        await host.close()
