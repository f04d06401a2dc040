"""Anti-entropy's summary (``mesh.view_summary``): two views that agree cost nothing, and a
pull of the buckets that differ brings one view level with the other."""

from __future__ import annotations

import dataclasses
import math
import random

from mesh import cluster_config
from mesh.cluster_view import ClusterView
from mesh.digest import encode_gossip
from mesh.messages import HealthDigest, LeaveNotice, ViewSnapshot
from mesh.signed import FakeEnvelopes
from mesh.snapshot_codec import decode_snapshot, encode_snapshot
from mesh.view_summary import BUCKETS, SUMMARY_BYTES, bucket_of, differing

START = 1_000_000  # ms
NOW = START / 1000 + 5  # wall seconds of every pull
CFG = dataclasses.replace(cluster_config.test(), max_members=512, join_burst=512)
ENVELOPES = FakeEnvelopes()
PEERS = [f"QmPeer{i:03d}" for i in range(300)]


def digest(peer: str, seq: int = 1) -> HealthDigest:
    return HealthDigest(node_id=peer, start_time_ms=START, seq=seq, sent_at_ms=START)


def feed(view: ClusterView, message: HealthDigest | LeaveNotice) -> None:
    author = message.node_id
    view.on_gossip(message, 0.0, ENVELOPES.seal(author, encode_gossip(message)))


def view_of(self_id: str, peers: list[str]) -> ClusterView:
    view = ClusterView(self_id, CFG)
    for peer in [self_id, *peers]:
        feed(view, digest(peer))
    return view


def sync(puller: ClusterView, responder: ClusterView) -> int:
    """One anti-entropy pull, page by page; the members it carried."""
    buckets = differing(responder.summary(), puller.summary())
    carried, after = 0, ""
    while True:
        page = responder.snapshot(NOW, after, 64, buckets)
        data = encode_snapshot(page)
        pulled = decode_snapshot(
            data, responder.self_id, NOW, verify=ENVELOPES.open, config=CFG, after=after
        )
        assert isinstance(pulled, ViewSnapshot)
        puller.merge_snapshot(pulled, 1.0)
        carried += len(pulled.members)
        if not pulled.next_after:
            return carried
        after = pulled.next_after


def test_views_that_agree_have_the_same_summary_whatever_the_order() -> None:
    shuffled = PEERS[:]
    random.Random(4).shuffle(shuffled)
    a, b = view_of("QmA", PEERS), view_of("QmB", shuffled)
    feed(a, digest("QmB"))
    feed(b, digest("QmA"))
    assert len(a.summary()) == SUMMARY_BYTES
    assert differing(a.summary(), b.summary()) == frozenset()
    assert sync(b, a) == 0  # agreeing views: an empty answer


def test_a_pull_of_what_differs_carries_only_those_buckets_and_levels_the_views() -> None:
    a, b = view_of("QmA", PEERS), view_of("QmB", PEERS)
    feed(a, digest("QmB"))
    feed(b, digest("QmA"))
    missed = ["QmPeer007", "QmPeer123"]
    for peer in missed:
        feed(a, digest(peer, seq=2))  # news gossip lost on its way to b
    feed(a, digest("QmLate"))  # a member b never heard of
    changed = {bucket_of(p) for p in [*missed, "QmLate"]}
    assert differing(a.summary(), b.summary()) == frozenset(changed)
    carried = sync(b, a)
    # Only the members of those few buckets travel, not the view.
    assert carried <= len(changed) * math.ceil(3 * len(PEERS) / BUCKETS)
    assert carried < len(PEERS) // 4
    assert b.member("QmLate") is not None
    assert all(b.member(p).seq == 2 for p in missed)  # type: ignore[union-attr]
    assert differing(a.summary(), b.summary()) == frozenset()


def test_dead_and_left_members_do_not_keep_views_apart() -> None:
    a, b = view_of("QmA", PEERS), view_of("QmB", PEERS[:-1])
    feed(a, digest("QmB"))
    feed(b, digest("QmA"))
    gone = PEERS[-1]
    feed(a, LeaveNotice(gone, START, 0, 2, sent_at_ms=START))  # b never knew it: no matter
    assert differing(a.summary(), b.summary()) == frozenset()


def test_a_summary_that_is_none_asks_for_everything() -> None:
    a = view_of("QmA", PEERS)
    assert differing(a.summary(), b"\x00" * 7) == frozenset(range(BUCKETS))
    assert differing(a.summary(), a.summary()[:-1]) == frozenset(range(BUCKETS))
