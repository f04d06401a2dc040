"""Liveness pings over the connections a node already has, one peer at a time.

py-libp2p 0.8.1's ConnectionHealthMonitor pings every connection, one after another, every
``health_check_interval``: each node sends n - 1 pings per interval and answers as many, so
the cost of a cluster grows with n squared. At 20 nodes on two cores that alone kept the
machine busy, failed pings aborted healthy connections, every reconnect cost more work, and
the devnet never converged (2026-11-28).

:class:`LinkPinger` follows SWIM's probe schedule instead: every ``interval`` it pings the
next of its connected peers in a round robin, so each node sends one ping per interval
whatever the cluster size, and each peer is still pinged once per interval by somebody.
The round robin turns in step on every node (``adapters/ping_schedule.py``): at each
wall-clock tick every member is pinged by exactly one other, not at random moments. A ping
that fails within ``timeout`` is reported to the listeners (the cluster view suspects the
peer); it is ignored while this node is itself starved, when the failure more likely says
that our own event loop did not run (Lifeguard's local health). With ``abort`` the
connection is then closed, as py-libp2p's monitor did: fewer pings fail falsely than with
the monitor (one per interval, none judged while starved), so fewer healthy links are cut.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import Callable

import trio
from libp2p.abc import INetConn, INetStream, INetwork
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.host.ping import PING_LENGTH
from libp2p.io.utils import read_exactly
from libp2p.network.health.ping_probe import ping_connection
from libp2p.peer.id import ID
from libp2p.protocol_muxer.multiselect_client import MultiselectClient
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

from adapters.link_timing import LinkTiming
from adapters.ping_schedule import next_tick, rotation
from adapters.tcp_witness import KernelWitness
from mesh.wake_grid import wall_offset

__all__ = ["LinkPinger", "PingListener"]

logger = logging.getLogger(__name__)

PingListener = Callable[[str], None]


def _never() -> bool:
    return False


def _never_peer(_peer: str) -> bool:
    return False


def _every_peer(_peer: str) -> bool:
    return True


def _one() -> int:
    return 1


async def _roundtrip(stream: INetStream, written: trio.Event) -> None:
    """One ping on a negotiated stream, as py-libp2p's ``perform_ping_roundtrip``, setting
    ``written`` once our kernel has the ping."""
    payload = secrets.token_bytes(PING_LENGTH)
    await stream.write(payload)
    written.set()
    if await read_exactly(stream, PING_LENGTH) != payload:
        raise ValueError("ping answered with another payload")


def _open(conns: list[INetConn]) -> list[INetConn]:
    """The connections whose close has not begun (SwarmConn.event_closed)."""
    return [c for c in conns if not getattr(getattr(c, "event_closed", None), "is_set", _never)()]


class LinkPinger:
    """Round-robin pings; see the module docstring. Counters: ``sent``, ``answered``,
    ``failed`` (reported to the listeners) and ``ignored`` (failed while we were starved)."""

    def __init__(
        self,
        network: INetwork,
        *,
        interval: float,
        timeout: float,
        abort: bool = False,
        reuse_streams: bool = False,
    ) -> None:
        if not (interval > 0 and timeout > 0):
            raise ValueError(f"ping interval and timeout must be > 0, got {interval}, {timeout}")
        self._network = network
        self.interval = interval
        # Read at every ping, so a test may change it on a running node.
        self.timeout = timeout
        self.abort = abort
        self.starved: Callable[[], bool] = _never
        # How many times slower to ping: the view's self-doubt + 1 (mesh.self_doubt). A
        # node whose pings fail to many peers is more likely slow itself; memberlist
        # stretches its probe interval and timeout by its awareness the same way, which
        # also takes load off cores that are already full. Out-of-turn pings are not
        # stretched: their caller waits for them within a fixed time.
        self.scale: Callable[[], int] = _one
        # Late answers for the network score (adapters/link_timing.py), and if it
        # ``measures``, per-peer timeouts from measured round trips instead of ``timeout``
        # for every ping (``timeout`` is then their ceiling).
        self.timing: LinkTiming | None = None
        # Fail a ping after ``early_after`` (times the self-doubt scale) when the kernel
        # says the peer's has it and the link is clean (adapters/tcp_witness.py); without a
        # witness every ping waits its full timeout.
        self.witness: KernelWitness | None = None
        self.early_after = 0.75  # P2PConfig.ping_early_after's default
        # Peers that said they are starved (HealthDigest.local_health): their process
        # answers late by its own account, so their kernel's word is no early verdict and
        # they get ``patient_factor`` times the timeout; each such failure would be a
        # suspicion and a refutation flooded to every member.
        self.patient: Callable[[str], bool] = _never_peer
        # Peers whose round-robin answers the network score hears (the gossip service:
        # members of its view). A stranger's connection is pinged too, but its answers,
        # late on purpose or not, must not stretch our verdicts on others.
        self.scored: Callable[[str], bool] = _every_peer
        # Whether our own event loop woke late lately (the node: its LoopLagMonitor). An
        # answer read by a lagging loop is late by our lag, not the network's: a node
        # restarted beside 19 others on two cores scored every answer late, reached the
        # cap, and took eight times the suspicion to see the next freeze (make bench,
        # 2026-12-04: 5.3-7.5 s at 20 nodes). While lagging, answers are not scored.
        self.lagging: Callable[[], bool] = _never
        self.patient_factor = 2.0  # P2PConfig.ping_patient_factor's default
        self.on_failure: list[PingListener] = []
        self.sent = 0
        self.answered = 0
        self.failed = 0
        self.ignored = 0
        self.silent = 0  # of ``failed``: failed early, on the kernel's word
        self._silenced: set[INetConn] = set()  # connections whose ping _watch failed
        # Wall-clock seconds minus trio's clock, for the ticks of the schedule; None: read
        # once when run() starts (a test sets 0 for a schedule it can predict).
        self.clock_offset: float | None = None
        get_id = getattr(network, "get_peer_id", None)
        self._me = get_id().to_base58() if get_id is not None else ""
        self._in_flight: set[ID] = set()
        # Peers whose last ping failed (and counted): connected, but not answering.
        self._unresponsive: set[ID] = set()
        # reuse_streams: one /ipfs/ping/1.0.0 stream per connection, every ping on it (the
        # protocol allows many; py-libp2p's and go-libp2p's responders keep a stream until
        # 10 s without a ping, and our round robin comes back sooner up to 20 peers). A
        # new stream per ping cost a yamux SYN/ACK, two multistream round trips, window
        # updates and a FIN each side: ~20 TCP segments a ping instead of ~4 (2026-12-02).
        self.reuse_streams = reuse_streams
        self._streams: dict[INetConn, INetStream] = {}

    def unresponsive(self) -> set[str]:
        """Connected peers whose latest ping went unanswered (a frozen process keeps its
        TCP connections open; this is how to tell it from a live one)."""
        self._unresponsive &= self._live()
        return {peer.to_base58() for peer in self._unresponsive}

    def _live(self) -> set[ID]:
        return {peer for peer, conns in self._network.connections.items() if _open(conns)}

    async def run(self) -> None:
        if self.clock_offset is None:
            self.clock_offset = wall_offset()  # its ticks on the node's wake grid
        async with trio.open_nursery() as nursery:
            tick: int | None = None
            while True:
                scale = max(1, self.scale())
                tick = await self._next_tick(tick, scale)
                peer = self.next_peer(tick)
                if peer is not None:
                    self._in_flight.add(peer)
                    nursery.start_soon(self._probe, peer, scale)

    async def _next_tick(self, last: int | None, scale: int) -> int:
        """Sleep until the tick ``scale`` after ``last`` begins and return it; the next
        tick to begin if there is no ``last`` or we are more than a tick behind it."""
        offset = self.clock_offset or 0.0
        tick = next_tick(trio.current_time() + offset, self.interval, last, scale)
        await trio.sleep_until(tick * self.interval - offset)
        return tick

    def next_peer(self, tick: int) -> ID | None:
        """The connected peer whose turn it is at ``tick`` (``adapters/ping_schedule.py``),
        or the next one after it without a ping in flight."""
        live = {peer.to_base58(): peer for peer in self._live()}
        for name in rotation(tick, self._me, live):
            peer = live[name]
            if peer not in self._in_flight:
                return peer
        return None

    async def probe_now(self, peer: str) -> bool | None:
        """Ping ``peer`` at once, out of turn (a suspicion of it was heard: SWIM's
        indirect probe, each observer asking for itself). The result goes where a
        round-robin ping's goes, and is returned: True if answered, False if not. None
        when nothing was learnt: no open connection to ``peer``, or a ping of it already
        in flight (not waited for)."""
        for peer_id in self._live():
            if peer_id.to_base58() == peer and peer_id not in self._in_flight:
                self._in_flight.add(peer_id)
                # Not scored: a suspect is slow by selection, and anyone who gets a
                # suspicion published chooses whom we ping out of turn.
                return await self._probe(peer_id, scored=False)
        return None

    def peer_closed(self, peer: str) -> bool:
        """Whether our kernel says ``peer`` has closed or reset every connection we hold to
        it. py-libp2p reads a killed process's close up to a second late on a busy node
        (20-node kill trials, 2026-12-04); until then the connection looks open."""
        witness = self.witness
        if witness is None:
            return False
        try:
            conns = self._network.connections.get(ID.from_base58(peer)) or []
            states = [witness.state(conn) for conn in conns]
        except Exception:  # an odd id or connection object: no kernel's word, as in _watch
            logger.debug("no TCP state for %s", peer, exc_info=True)
            return False
        # A socket we closed ourselves reads as None (its fd is gone): never "closed by it".
        return bool(states) and all(s is not None and s.peer_closed for s in states)

    def network_score(self) -> int:
        """Late answers less timely ones, members' round robin only (``LinkTiming.score``;
        0 without timing)."""
        return 0 if self.timing is None else self.timing.score

    async def ping(
        self, conn: INetConn, timeout: float | None = None, early: float | None = None
    ) -> bool:
        """One ping on ``conn`` within ``timeout`` (default: ours); True if answered. With
        ``early`` and a witness (kept streams only), failed from then on as soon as the
        kernel says the peer's process is silent."""
        timeout = self.timeout if timeout is None else timeout
        if self.reuse_streams:
            return await self._ping_reusing(conn, timeout, early)
        result = await ping_connection(conn, ping_timeout=timeout)
        return result.success

    async def _watch(
        self, conn: INetConn, early: float, scope: trio.CancelScope, written: trio.Event
    ) -> None:
        witness = self.witness
        if witness is None:
            return
        # From the moment our kernel has the ping: before, unacked == 0 says nothing.
        await written.wait()
        # Asked again every ``early`` until the timeout: our own unread bytes or a
        # retransmit in flight may clear. Each look is judged against the one before (the
        # write, at first): a resend between them vetoes that look (tcp_witness.py).
        try:
            before = witness.state(conn)
            while True:
                await trio.sleep(early)
                state = witness.state(conn)
                if witness.judge(conn, state, trio.current_time(), before):
                    break
                before = state
        except Exception:  # no verdict is better than a dead pinger
            logger.debug("no TCP state for %s", conn.muxed_conn.peer_id, exc_info=True)
            return
        # An answer already read off the socket may be one scheduler pass from the ping:
        # let it land first (it cancels this watcher when it does).
        await trio.lowlevel.checkpoint()
        self._silenced.add(conn)
        scope.cancel()

    async def _ping_reusing(self, conn: INetConn, timeout: float, early: float | None) -> bool:
        # Streams of connections that are gone: at most one entry per open connection.
        live = {c for conns in self._network.connections.values() for c in conns}
        for old in [c for c in self._streams if c not in live]:
            del self._streams[old]
        if self.witness is not None:
            self.witness.forget(set(live))
        for _attempt in (1, 2):
            stream = self._streams.get(conn)
            fresh = stream is None
            answered = False
            written = trio.Event()
            with trio.move_on_after(timeout) as scope:
                async with trio.open_nursery() as watching:
                    if early is not None and early < timeout:
                        watching.start_soon(self._watch, conn, early, scope, written)
                    try:
                        if stream is None:
                            stream = await conn.new_stream()
                            await MultiselectClient().select_one_of(
                                [PING_PROTOCOL],
                                MultiselectCommunicator(stream),
                                max(1, math.ceil(timeout)),
                            )
                            self._streams[conn] = stream
                        await _roundtrip(stream, written)
                        answered = True
                    except Exception as exc:  # a broken stream, or a peer that said no
                        logger.debug("ping stream to %s failed: %r", conn.muxed_conn.peer_id, exc)
                    watching.cancel_scope.cancel()
            if answered:
                return True
            # Reset, not reused: a late pong must not answer the next ping.
            self._streams.pop(conn, None)
            if stream is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    with contextlib.suppress(Exception):
                        await stream.reset()
            # Only a kept stream that failed at once (its responder closed it after 10 s
            # idle) is retried, on a fresh one; a timeout is the peer's failure.
            if fresh or scope.cancelled_caught:
                return False
        return False

    async def _probe(self, peer: ID, scale: int = 1, *, scored: bool = True) -> bool | None:
        """One ping of ``peer`` within ``scale`` times its timeout: True if answered,
        False if not, None if no connection was open (nothing sent)."""
        try:
            conns = _open(self._network.connections.get(peer) or [])
            if not conns:
                return None
            # An open one: a connection whose close has begun fails every ping.
            conn = conns[0]
            self.sent += 1
            name = peer.to_base58()
            timeout = self.timeout
            if self.timing is not None and self.timing.measures:
                timeout = self.timing.timeout(name)
            timeout *= scale
            starved_peer = self.patient(name)
            if starved_peer:
                timeout *= self.patient_factor
            early = None if self.witness is None or starved_peer else self.early_after * scale
            began = trio.current_time()
            try:
                answered = await self.ping(conn, timeout, early)
                early_verdict = conn in self._silenced
            finally:
                self._silenced.discard(conn)  # cancelled too: it holds no closed connection
            if answered:
                self.answered += 1
                self._unresponsive.discard(peer)
                if self.timing is not None:
                    rtt = trio.current_time() - began
                    scored = scored and self.scored(name) and not self.lagging()
                    self.timing.answered(name, rtt, scored=scored)
                return True
            if self.timing is not None:
                self.timing.unanswered(name)
            if self.starved():
                self.ignored += 1
                logger.debug("ping to %s failed while this node is starved; ignored", peer)
                return False
            self.failed += 1
            self._unresponsive.add(peer)
            if early_verdict:
                self.silent += 1
                logger.info("ping to %s not answered within %.2fs; its kernel has it", peer, early)
            else:
                logger.info("ping to %s not answered within %.2fs", peer, timeout)
            for listener in list(self.on_failure):
                try:
                    listener(peer.to_base58())
                except Exception:
                    logger.exception("ping listener %r failed for %s", listener, peer)
            if self.abort:
                with contextlib.suppress(Exception):
                    await conn.close()
            return False
        finally:
            self._in_flight.discard(peer)
