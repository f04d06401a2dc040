"""The pull protocol of one simulated node, as ``adapters/view_pull.py`` runs it.

A pull on each new connection (paced by ``pull_rate``) and one of what differs from a
random connected member every ``sync_interval`` (anti-entropy), page by page with the
real codec:
``pull_request``'s cursor (its size is what the request costs on the wire),
``decode_snapshot``'s page checks, ``split_page`` (each page merged at once, the notices
it carries after the last), retries with back-off, at most ``max_pages``; the server's
limits on first and later pages. Simplified: the adapter waits for the peer's subscription
to the topic; here a pull starts two round trips after the connection
(``SimNode.on_connected``), and one pull at a time is not enforced (``max_concurrent_pulls``).
"""

from __future__ import annotations

from adapters.pull_pacing import ServeLimits, max_pages, sync_intervals
from devnet.simulator.kernel import NodeSide
from mesh.cluster_snapshot import split_page
from mesh.messages import MemberEntry, ViewSnapshot
from mesh.rejection import Rejection
from mesh.snapshot_codec import MAX_PAGE_MEMBERS, PullAsk, decode_snapshot, encode_snapshot
from mesh.view_summary import differing
from probes.rate_limit import TokenBucket

__all__ = ["SimPulls"]


class SimPulls:
    def __init__(self, node: NodeSide) -> None:
        self.node = node
        tuning = node.tuning
        self._budget = TokenBucket(tuning.pull_rate, tuning.pull_burst, 0.0)
        self._limits = ServeLimits(tuning)
        self.pages = 0  # pages merged, all pulls together
        self._syncs = sync_intervals(tuning)

    def start(self, peer: int) -> None:
        """A pull from a newly connected peer, if the budget allows one."""
        if peer in self.node.connected and self._budget.take(self.node.now):
            self._page(peer, PullAsk(), attempt=0, pages=0, waiting=[])

    def start_syncing(self) -> None:
        """Anti-entropy (``PullClient.run``): after each of ``sync_intervals``, jittered,
        a pull of what differs from a random connected member's view."""
        self._syncs = sync_intervals(self.node.tuning)
        self._next_sync()

    def _next_sync(self) -> None:
        node = self.node
        node.later(next(self._syncs) * node.rng.uniform(0.5, 1.5), self._sync)

    def _sync(self) -> None:
        node = self.node
        peers = sorted(p for p in node.connected if node.view.knows(node.cluster.peer_id(p)))
        if peers:
            peer = node.rng.choice(peers)
            self._page(peer, PullAsk("", node.view.summary()), attempt=0, pages=0, waiting=[])
        self._next_sync()

    def serve(self, client: int, ask: PullAsk) -> bytes | None:
        """Our answer to ``client``'s request; None: refused."""
        node = self.node
        if not self._limits.allow(node.cluster.peer_id(client), ask, node.now):
            return None
        buckets = None if ask.summary is None else differing(node.view.summary(), ask.summary)
        page = node.view.snapshot(node.wall, ask.after, MAX_PAGE_MEMBERS, buckets)
        return encode_snapshot(page)

    def _page(
        self, peer: int, ask: PullAsk, attempt: int, pages: int, waiting: list[MemberEntry]
    ) -> None:
        if peer not in self.node.connected:
            self._finish(peer, waiting)
            return
        self.node.cluster.pull(
            self.node.index,
            peer,
            ask,
            lambda data: self._pulled(peer, data, ask, attempt, pages, waiting),
        )

    def _pulled(
        self,
        peer: int,
        data: bytes | None,
        ask: PullAsk,
        attempt: int,
        pages: int,
        waiting: list[MemberEntry],
    ) -> None:
        node = self.node
        if data is None:
            if attempt + 1 < node.tuning.pull_attempts:
                node.later(
                    node.tuning.pull_retry_delay * 2**attempt,
                    lambda: self._page(peer, ask, attempt + 1, pages, waiting),
                )
            else:
                self._finish(peer, waiting)
            return
        page = decode_snapshot(
            data,
            node.cluster.peer_id(peer),
            node.wall,
            verify=node.verify,
            config=node.config,
            after=ask.after,
        )
        if isinstance(page, Rejection):
            node.rejected[page.reason] = node.rejected.get(page.reason, 0) + 1
            self._finish(peer, waiting)
            return
        at_once, later = split_page(page)
        waiting += later
        node.handle(node.view.merge_snapshot(at_once, node.now))
        node.arm_tick()
        self.pages += 1
        if (
            page.next_after
            and pages + 1 < max_pages(node.config)
            and self._budget.take(node.now)  # each later page takes a token, as in the node
        ):
            self._page(peer, PullAsk(page.next_after, ask.summary), 0, pages + 1, waiting)
        else:
            self._finish(peer, waiting)

    def _finish(self, peer: int, waiting: list[MemberEntry]) -> None:
        if waiting:
            responder = self.node.cluster.peer_id(peer)
            self.node.handle(
                self.node.view.merge_snapshot(
                    ViewSnapshot(responder, 0, tuple(waiting)), self.node.now
                )
            )
            self.node.arm_tick()
