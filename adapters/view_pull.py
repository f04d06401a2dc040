"""The pull protocol ``/chorus/health-view/1.0.0``: a peer's whole view, on request.

The client opens a stream, writes a request (``mesh.snapshot_codec.pull_request``: the
first page, or the page after a member id), and half-closes; the server answers with one
``ViewSnapshot`` (mesh/digest.proto) of at most ``MAX_SNAPSHOT_BYTES`` and closes. A view
too large for one snapshot goes in pages, in the order of member ids, each ending with the
cursor of the next (``next_after``), one stream each; a client pulls at most ``max_pages``
of them from one peer. Both sides bound what they read and how long they wait, and the
server serves each peer at most ``serve_rate`` first pages a second (burst ``serve_burst``)
and ``serve_page_rate`` later ones, one at a time. A snapshot carries signed statements
only, which the client verifies (``adapters.envelope``) before the view applies them as if
they came from the topic; with an admission policy, only members are pulled from. We pull
from every newly connected peer as soon as it shows its subscription to the topic, so a new
node converges at once (memberlist's push/pull on join), paced by ``pull_rate``: verifying
a view costs CPU.

``PullClient`` pulls; ``PullServer`` answers (the service registers it as the protocol's
stream handler before it subscribes to the topic, so a subscribed peer can answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import trio

from adapters.envelope import EnvelopeCache
from adapters.gossip_metrics import GossipMetrics
from adapters.gossip_tuning import GossipTuning
from adapters.pull_pacing import ServeLimits, SummaryMemo, max_pages, sync_intervals
from adapters.stream_read import read_to_eof
from mesh.admission import AdmissionPolicy
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import Outcome
from mesh.cluster_snapshot import split_page
from mesh.cluster_view import ClusterView
from mesh.digest import TOPIC
from mesh.messages import Gossip, MemberEntry, MemberState, ViewSnapshot
from mesh.rejection import Rejection
from mesh.snapshot_codec import (
    MAX_PAGE_MEMBERS,
    MAX_PULL_REQUEST,
    decode_snapshot,
    encode_snapshot,
    parse_pull_request,
    pull_request,
)
from mesh.view_summary import differing
from mesh.wire_bounds import MAX_SNAPSHOT_BYTES
from probes.rate_limit import TokenBucket

if TYPE_CHECKING:
    from libp2p.abc import INetStream

    from adapters.p2p_node import P2PNode

__all__ = ["PULL_PROTOCOL", "PullClient", "PullServer"]

# The service's parts log as the service: operators' filters and the tests select on it.
logger = logging.getLogger("adapters.gossip")

PULL_PROTOCOL = "/chorus/health-view/1.0.0"


class PullClient:
    """Pulls newly connected peers' views into ours (``pull_from``). ``admitted`` is the
    admission policy's verdict on a pulled digest (``InboundGossip.admitted``); ``wake``
    has the publisher announce us; ``connected`` holds the peers we are connected to."""

    def __init__(
        self,
        node: P2PNode,
        view: ClusterView,
        config: ClusterConfig,
        tuning: GossipTuning,
        metrics: GossipMetrics,
        envelopes: EnvelopeCache,
        admission: AdmissionPolicy,
        *,
        connected: Collection[str],
        admitted: Callable[[Gossip], Rejection | None],
        handle: Callable[[Outcome, str], None],
        wake: Callable[[], None],
        running: Callable[[], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._node = node
        self._view = view
        self._config = config
        self._tuning = tuning
        self._metrics = metrics
        self._envelopes = envelopes
        self._admission = admission
        self._connected = connected
        self._admitted = admitted
        self._handle = handle
        self._wake = wake
        self._running = running
        self._clock = clock
        self._wall = wall_clock
        self._budget = TokenBucket(tuning.pull_rate, tuning.pull_burst, 0.0)
        self._slots = trio.Semaphore(tuning.max_concurrent_pulls)
        self._rng = random.Random()
        self._tried_joining: set[str] = set()  # bootstrap peers only (_pull_joining)

    async def pull_from(self, peer: str) -> None:
        """Pull a newly connected peer's view once it shows itself a health-mesh member.

        Waiting for its subscription to our topic (GossipSub tells us within milliseconds)
        spares peers that run no health mesh (CHORUS's Go peers, say) a stream they would
        refuse, and py-libp2p's ERROR log of the refusal; our own service registers the pull
        handler before it subscribes, so a subscribed peer can answer. A joiner asks the
        bootstrap peer it joins through at once, and again only if that did not bring us
        the peer itself."""
        joined = self._joining_through(peer) and await self._pull_joining(peer)
        # Still waited for: its subscription is when the publisher announces us to it.
        if not await self._wait_for_subscription(peer) or joined:
            return
        if not self._budget.take(self._clock()):
            self._metrics.pulls.labels(side="client", result="skipped").inc()
            return
        async with self._slots:
            # With our summary, as anti-entropy asks: a joiner's holds only itself and gets
            # the whole view, but each member it connects to (all of them, through the DHT)
            # pulls it too, and a page of every member each was a join's main CPU cost on
            # both sides (at 10 nodes, 18 whole views verified around one join).
            await self._pull_pages(peer, self._summary_for(peer))

    async def _pull_joining(self, peer: str) -> bool:
        """One try at the view of the bootstrap peer we join through, before its
        subscription shows (a starting node saw it 0.2 s after connecting, of a 20-node
        join's 0.45 s); whether we now hold the peer, which its every snapshot lists. Once
        per (configured) bootstrap peer: one that runs no health mesh refuses the stream."""
        if peer in self._tried_joining or not self._budget.take(self._clock()):
            return False
        self._tried_joining.add(peer)
        async with self._slots:
            await self._pull_pages(peer, self._summary_for(peer), attempts=1)
        return self._view.member(peer) is not None

    async def run(self) -> None:
        """Anti-entropy: every ``sync_interval`` (jittered), pull from one connected member,
        chosen at random, what differs between its view and ours (``mesh.view_summary``):
        statements gossip lost (a digest turned away in a join storm is not forwarded) come
        back within an interval or two, however rare refreshes are. Two views that agree
        cost a 512-byte summary and an empty answer. A node that just started syncs sooner
        (``sync_intervals``): in a join storm every node is missing what others lost."""
        for interval in sync_intervals(self._tuning):
            await trio.sleep(interval * self._rng.uniform(0.5, 1.5))
            peers = sorted(p for p in self._connected if self._view.knows(p))
            if not peers or not self._running():
                continue
            try:
                async with self._slots:
                    await self._pull_pages(self._rng.choice(peers), self._view.summary())
            except Exception as exc:  # what a peer sends must never end the loop
                self._metrics.loop_failed("sync", exc)

    async def _pull_pages(
        self, peer: str, summary: bytes | None, *, attempts: int | None = None
    ) -> None:
        """Every page of ``peer``'s view (of what differs from ``summary``, if given).

        Each page after the first takes a token of the pull budget, as a pull does: what
        costs CPU is verifying the statements, and a page carries as many as a whole view
        used to. The whole exchange has ``pull_deadline``: a responder that answers each
        page just in time must not hold one of our pull slots for minutes."""
        waiting: list[MemberEntry] = []
        tries = self._tuning.pull_attempts if attempts is None else attempts
        try:
            with trio.move_on_after(self._tuning.pull_deadline):
                after: str | None = ""
                for page in range(max_pages(self._config)):
                    if page and not self._budget.take(self._clock()):
                        self._metrics.pulls.labels(side="client", result="skipped").inc()
                        break
                    after = await self._pull_page(peer, after or "", summary, waiting, tries)
                    if not after:
                        break
        finally:
            if waiting and self._running():  # the notices of every page pulled
                self._merge(peer, ViewSnapshot(peer, 0, tuple(waiting)), None)

    async def _pull_page(
        self, peer: str, after: str, summary: bytes | None, waiting: list[MemberEntry], tries: int
    ) -> str | None:
        """One page, in up to ``tries`` tries: the cursor of the next page, or None when done."""
        request = pull_request(after, summary)
        for attempt in range(tries):
            if attempt:
                await trio.sleep(self._tuning.pull_retry_delay * 2 ** (attempt - 1))
            if peer not in self._connected or not self._running():
                return None
            answered, after_this = await self._pull_once(peer, after, request, waiting)
            if answered:
                return after_this
        return None

    async def _wait_for_subscription(self, peer: str) -> bool:
        from libp2p.peer.id import ID

        pid = ID.from_base58(peer)
        topics: Mapping[str, Any] = getattr(self._node.guarded_pubsub, "peer_topics", {})
        with trio.move_on_after(self._tuning.pull_subscription_wait):
            # Polling: py-libp2p offers no event for a peer's subscription.
            # With an admission policy, only members are pulled from: their digest (sent
            # when we join each other's mesh) must have been admitted first; but see
            # _joining_through.
            woken = False
            while pid not in topics.get(TOPIC, ()) or (
                self._admission.enabled
                and self._view.member(peer) is None
                and not self._joining_through(peer)
            ):
                if peer not in self._connected:
                    return False
                if not woken and pid in topics.get(TOPIC, ()):
                    # py-libp2p grafts a subscriber at once while our mesh is short: let
                    # the publisher announce us now, not at its next poll (up to 0.25 s
                    # of a joiner's convergence, twice over with admission).
                    woken = True
                    self._wake()
                await trio.sleep(0.02)
            self._wake()
            return True
        return False

    def _summary_for(self, peer: str) -> bytes | None:
        """Our summary, so that the answer is what differs; none (the whole view) from a
        peer we had lost: after a partition, the suspicions and leaves that summaries
        cannot tell apart (mesh/view_summary.py) come back with it."""
        member = self._view.member(peer)
        if member is not None and member.state is not MemberState.ALIVE:
            return None
        return self._view.summary()

    def _joining_through(self, peer: str) -> bool:
        """Whether ``peer`` is one of our bootstrap peers and we know nobody yet: a joiner
        pulls from it at once, where its digest could take a GossipSub heartbeat (1 s)
        to come. The operator named it, and what its snapshot holds is admitted entry by
        entry; nor does its word count towards the two a member needs to be vouched for
        (mesh/cluster_snapshot.py) unless it is a member itself. Once we know anyone, it
        waits like any peer."""
        return self._view.member_count() <= 1 and peer in self._node.bootstrap_peers

    async def _pull_once(
        self, peer: str, after: str, request: bytes, waiting: list[MemberEntry]
    ) -> tuple[bool, str | None]:
        """One exchange: whether it got an answer (accepted or rejected; else retry), and
        the next page's cursor if there is one. The page is merged at once but for its
        notices, which go to ``waiting`` (``split_page``)."""
        data: bytes | None = None
        try:
            with trio.move_on_after(self._tuning.pull_timeout):
                data = await self._request_snapshot(peer, request)
        except Exception as exc:
            logger.debug("pull from %s failed: %r", peer, exc)
        if not data:  # nothing, too much, or reset unanswered (refused): no view
            self._metrics.pulls.labels(side="client", result="failed").inc()
            return False, None
        snapshot = decode_snapshot(
            data, peer, self._wall(), verify=self._envelopes.open, config=self._config, after=after
        )
        if isinstance(snapshot, Rejection):
            self._metrics.pulls.labels(side="client", result="rejected").inc()
            self._metrics.count_rejection(peer, snapshot)
            return True, None
        self._metrics.pulls.labels(side="client", result="ok").inc()
        return True, (snapshot.next_after or None) if self._merge(peer, snapshot, waiting) else None

    def _merge(self, peer: str, page: ViewSnapshot, waiting: list[MemberEntry] | None) -> bool:
        """Merge a pulled page: whole, or (``waiting`` given) at once but for its notices,
        which wait there for the pull's last page (``split_page``). False if it failed."""
        try:
            if waiting is not None:
                page, later = split_page(self._admitted_entries(page, peer))
                waiting.extend(later)
            self._handle(self._view.merge_snapshot(page, self._clock()), peer)
            return True
        except Exception:  # what a peer sends must never end the service
            self._metrics.errors.labels(where="merge").inc()
            logger.exception("view pulled from %s could not be merged", peer)
            return False

    def _admitted_entries(self, snapshot: ViewSnapshot, responder: str) -> ViewSnapshot:
        """The snapshot without the members the admission policy does not admit."""
        if not self._admission.enabled:
            return snapshot
        kept = []
        for entry in snapshot.members:
            refused = self._admitted(entry.digest)
            if refused is None:
                kept.append(entry)
            else:
                self._metrics.count_rejection(responder, refused)
        return dataclasses.replace(snapshot, members=tuple(kept))

    async def _request_snapshot(self, peer: str, request: bytes) -> bytes | None:
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        stream = await self._node.host.new_stream(ID.from_base58(peer), [TProtocol(PULL_PROTOCOL)])
        data: bytes | None = None
        try:
            await stream.write(request)
            # A write half-close: NetStream.close_write() (not in INetStream's interface);
            # on Yamux, close() is one too.
            await getattr(stream, "close_write", stream.close)()
            data = await read_to_eof(stream, MAX_SNAPSHOT_BYTES)
        finally:
            if data is None:  # failed, cancelled or oversized: do not leave it half open
                await _reset(stream)
        with contextlib.suppress(Exception):
            await stream.close()
        return data


class PullServer:
    """Answers pulls (``serve`` is the protocol's stream handler); ``running`` says
    whether the service still runs."""

    def __init__(
        self,
        view: ClusterView,
        tuning: GossipTuning,
        metrics: GossipMetrics,
        *,
        running: Callable[[], bool],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._view = view
        self._tuning = tuning
        self._metrics = metrics
        self._running = running
        self._clock = clock
        self._wall = wall_clock
        self._limits = ServeLimits(tuning)
        self._summary = SummaryMemo(view.summary)
        self._serving = 0
        self._serving_peers: dict[str, int] = {}

    async def serve(self, stream: INetStream) -> None:
        # Everything a peer can cause is caught: an exception escaping a py-libp2p stream
        # handler ends the whole node (notes, "Hostile input").
        try:
            peer = stream.muxed_conn.peer_id.to_base58()
            if (
                not self._running()
                or self._serving >= self._tuning.max_concurrent_serves
                or self._serving_peers.get(peer, 0) >= self._tuning.max_serves_per_peer
            ):
                self._metrics.pulls.labels(side="server", result="refused").inc()
                await _reset(stream)
                return
            self._serving += 1
            self._serving_peers[peer] = self._serving_peers.get(peer, 0) + 1
            try:
                await self._answer(stream, peer)
            finally:
                self._serving -= 1
                left = self._serving_peers.pop(peer, 1) - 1
                if left > 0:
                    self._serving_peers[peer] = left
        except Exception as exc:
            self._metrics.errors.labels(where="serve").inc()
            logger.info("pull request failed: %r", exc)
            await _reset(stream)

    async def _answer(self, stream: INetStream, peer: str) -> None:
        request: bytes | None = None
        with trio.move_on_after(self._tuning.serve_read_timeout):
            request = await read_to_eof(stream, MAX_PULL_REQUEST)
        ask = parse_pull_request(request)
        if ask is None or not self._limits.allow(peer, ask, self._clock()):
            self._metrics.pulls.labels(side="server", result="refused").inc()
            await _reset(stream)
            return
        buckets = None
        if ask.summary is not None:
            buckets = differing(self._summary.get(self._clock()), ask.summary)
        page = self._view.snapshot(self._wall(), ask.after, MAX_PAGE_MEMBERS, buckets)
        data = encode_snapshot(page)
        with trio.fail_after(self._tuning.serve_write_timeout):
            await stream.write(data)
            await stream.close()
        self._metrics.pulls.labels(side="server", result="served").inc()


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), contextlib.suppress(Exception):
        await stream.reset()
