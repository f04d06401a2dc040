"""When anti-entropy pulls (``adapters.view_pull.sync_intervals``): soon and often right
after start, when a join storm has left every node missing what the others lost, then
every ``sync_interval``."""

from __future__ import annotations

from itertools import islice
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.gossip_metrics import GossipMetrics
from adapters.gossip_tuning import GossipTuning
from adapters.pull_pacing import SUMMARY_REUSE, SummaryMemo, max_pages, sync_intervals
from adapters.view_pull import PullServer
from mesh.cluster_config import ClusterConfig
from mesh.cluster_view import ClusterView
from mesh.snapshot_codec import pull_request


def test_syncs_come_early_then_settle_at_the_interval() -> None:
    tuning = GossipTuning(sync_first=1.0, sync_early=3, sync_interval=10.0)
    assert list(islice(sync_intervals(tuning), 8)) == [1, 1, 1, 2, 4, 8, 10, 10]


def test_a_first_sync_longer_than_the_interval_is_cut_to_it() -> None:
    tuning = GossipTuning(sync_first=5.0, sync_early=1, sync_interval=0.5)
    assert list(islice(sync_intervals(tuning), 3)) == [0.5, 0.5, 0.5]


def test_pages_a_pull_may_take_grow_with_the_view_it_may_hold() -> None:
    assert max_pages(ClusterConfig()) == 8  # 1,024 members at 2 KiB, 256 KiB a page
    assert max_pages(ClusterConfig(max_members=10_000)) == 79
    assert max_pages(ClusterConfig(max_members=2)) == 1


@pytest.mark.parametrize(
    "change",
    [{"sync_first": 0.0}, {"sync_interval": -1.0}, {"sync_early": -1}, {"pull_deadline": 0.0}],
)
def test_settings_that_would_spin_or_end_the_sync_loop_are_refused(
    change: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        GossipTuning(**change)  # type: ignore[arg-type]


def test_a_server_builds_its_summary_once_per_reuse_window() -> None:
    built: list[int] = []

    def build() -> bytes:
        built.append(1)
        return bytes([len(built)]) * 512

    memo = SummaryMemo(build)
    assert memo.get(100.0) == bytes([1]) * 512
    # Any number of sync requests and later pages within the window: one build.
    for now in (100.0, 100.2, 100.0 + SUMMARY_REUSE / 2, 100.0 + SUMMARY_REUSE * 0.99):
        assert memo.get(now) == bytes([1]) * 512
    assert len(built) == 1
    assert memo.get(100.0 + SUMMARY_REUSE) == bytes([2]) * 512
    # A clock that went back (a test's, or a stepped one) builds afresh, never trusts it.
    assert memo.get(50.0) == bytes([3]) * 512
    assert len(built) == 3


class _Stream:
    """Just enough of a libp2p stream for the pull server: one request in, the answer out."""

    def __init__(self, request: bytes, peer: str) -> None:
        self._unread = request
        self.written = b""
        self.muxed_conn = SimpleNamespace(peer_id=SimpleNamespace(to_base58=lambda: peer))

    async def read(self, n: int = -1) -> bytes:
        chunk, self._unread = self._unread, b""
        return chunk

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        pass

    async def reset(self) -> None:
        raise AssertionError("the server refused a well-formed request")


async def test_the_pull_server_answers_sync_requests_from_one_summary_a_second() -> None:
    me = "12D3KooW" + "S" * 44
    view = ClusterView(me)
    built: list[bytes] = []
    real = view.summary

    def counted() -> bytes:
        built.append(real())
        return built[-1]

    view.summary = counted  # type: ignore[method-assign]
    now = [100.0]
    tuning = GossipTuning()
    metrics = GossipMetrics(CollectorRegistry(), view, rejection_log_keys=8)
    server = PullServer(
        view, tuning, metrics, running=lambda: True, clock=lambda: now[0], wall_clock=lambda: 0.0
    )
    theirs = bytes(512)  # a view with nobody in it: every bucket differs from ours
    asked: list[Any] = []
    for i, at in enumerate((100.0, 100.3, 100.9, 101.0)):
        now[0] = at
        stream = _Stream(pull_request("", theirs), f"12D3KooW{i:044d}")
        await server.serve(stream)  # type: ignore[arg-type]
        asked.append(stream.written)
    assert all(asked)  # every request answered
    assert len(built) == 2  # at 100.0, and again once the second was over (101.0)
