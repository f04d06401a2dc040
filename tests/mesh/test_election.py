from __future__ import annotations

import dataclasses
import random
from types import MappingProxyType

import pytest

from mesh import cluster_config
from mesh.cluster_roster import Member
from mesh.cluster_view import ClusterView
from mesh.election import ElectionTracker, LeadershipChange, elect_admin, eligible
from mesh.messages import HealthDigest, MemberEntry, MemberState, Version, ViewSnapshot
from mesh.model import Status

ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


def member(
    node: str,
    start: float,
    state: MemberState = ALIVE,
    status: Status = Status.HEALTHY,
    *,
    firsthand: bool = True,
) -> Member:
    return Member(
        node_id=node,
        state=state,
        status=status,
        score=1.0,
        components=MappingProxyType({}),
        key=Version(int(start * 1000), 0, 1),
        start_time=start,
        last_heard=0.0,
        state_since=0.0,
        suspect_since=None,
        suspected_by=frozenset(),
        connected=True,
        version="v0.1.0",
        http_addr="",
        p2p_addrs=(),
        history=(),
        firsthand=firsthand,
    )


@pytest.mark.parametrize(
    ("members", "admin"),
    [
        ([], None),
        ([member("QmA", 100.0)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0)], "QmB"),  # longest running
        ([member("QmB", 50.0), member("QmA", 50.0)], "QmA"),  # tie: smallest peer ID
        ([member("QmA", 100.0), member("QmB", 50.0, SUSPECT)], "QmA"),
        # Known only from a pulled view (a minted "longest running" one, say): not yet.
        ([member("QmA", 100.0), member("QmB", 1.0, firsthand=False)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, DEAD)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, LEFT)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, status=Status.DEGRADED)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, status=Status.UNHEALTHY)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, status=Status.STARTING)], "QmA"),
        ([member("QmA", 100.0), member("QmB", 50.0, status=Status.STOPPING)], "QmA"),
        # Degraded members stand in only when nobody is healthy (else no cluster could start).
        ([member("QmA", 1.0, DEAD), member("QmB", 2.0, status=Status.DEGRADED)], "QmB"),
        ([member("QmA", 1.0, status=Status.DEGRADED), member("QmB", 2.0, SUSPECT)], "QmA"),
        ([member("QmA", 1.0, status=Status.UNHEALTHY)], None),
    ],
)
def test_elect_admin(members: list[Member], admin: str | None) -> None:
    assert elect_admin(members) == admin
    assert elect_admin(reversed(members)) == admin  # order of the view does not matter


def test_eligibility() -> None:
    assert eligible(member("QmA", 1.0))
    assert not eligible(member("QmA", 1.0, SUSPECT))
    assert not eligible(member("QmA", 1.0, status=Status.DEGRADED))
    assert eligible(member("QmA", 1.0, status=Status.DEGRADED), Status.DEGRADED)


def test_views_that_agree_elect_the_same_admin() -> None:
    digests = [
        HealthDigest(node_id=f"Qm{i}", start_time_ms=1_000_000 + (i % 3) * 1000, seq=1)
        for i in range(8)
    ]
    admins = set()
    for seed in range(5):
        order = digests[:]
        random.Random(seed).shuffle(order)
        view = ClusterView(f"Qm{seed}", cluster_config.test())
        for digest in order:
            view.on_digest(digest, 0.0)
        admins.add(elect_admin(view.members().values()))
    assert admins == {"Qm0"}  # earliest start (0, 3, 6 tie) and then the smallest ID


def test_the_view_elects_from_its_own_records_as_from_copies() -> None:
    # Healthy, degraded, suspect, silent-but-listed and snapshot-only members: the
    # uncopied records must elect exactly whom the copies elect, whatever the mix.
    admins = set()
    for seed in range(20):
        rng = random.Random(seed)
        view = ClusterView("QmSelf", cluster_config.test())
        for i in range(12):
            status = rng.choice([Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY])
            digest = HealthDigest(
                node_id=f"Qm{i}", start_time_ms=1_000_000 + rng.randrange(4) * 1000, seq=1
            )
            digest = dataclasses.replace(digest, status=status)
            if rng.random() < 0.2:
                view.merge_snapshot(ViewSnapshot("QmOther", 1, (_entry(digest),)), 0.0)
            else:
                view.on_digest(digest, 0.0)
            if rng.random() < 0.2:
                view.on_disconnected(digest.node_id, 0.0)
        copies = list(view.members().values())
        admin = elect_admin(view.candidates())
        assert admin == elect_admin(copies)
        admins.add(admin)
    assert len(admins) > 3  # the mixes differ


def _entry(digest: HealthDigest) -> MemberEntry:
    return MemberEntry(digest=digest, state=ALIVE, statement=b"signed")


def test_tracker_baseline_is_not_a_change() -> None:
    tracker = ElectionTracker(window=100.0)
    assert tracker.observe([member("QmA", 10.0)], 50.0) is None
    health = tracker.health(50.0)
    assert (health.admin, health.changes_total, health.stability, health.healthy) == (
        "QmA",
        0,
        1.0,
        True,
    )
    assert health.admin_uptime == 40.0 and health.term == 0.0
    assert health.last_change is None


def test_tracker_records_changes_and_stability() -> None:
    tracker = ElectionTracker(window=100.0, max_changes=1)
    a, b = member("QmA", 10.0), member("QmB", 20.0)
    tracker.observe([a, b], 0.0)
    assert tracker.observe([a, b], 30.0) is None
    change = tracker.observe([member("QmA", 10.0, DEAD), b], 60.0)
    assert change == LeadershipChange(60.0, "QmA", "QmB")
    health = tracker.health(80.0)
    assert health.admin == "QmB" and health.admin_uptime == 60.0 and health.term == 20.0
    assert health.changes_in_window == 1 and health.healthy
    assert health.stability == pytest.approx(20.0 / 80.0)  # observed 80 s, stable for 20
    assert tracker.health(160.0).stability == 1.0  # a whole window without change
    assert tracker.health(160.0).changes_in_window == 0
    tracker.observe([a, b], 90.0)  # A is back and longest running
    assert tracker.health(95.0).changes_in_window == 2
    assert not tracker.health(95.0).healthy  # more than max_changes in the window
    assert tracker.health(95.0).stability == pytest.approx(5.0 / 95.0)
    assert [c.current for c in tracker.changes()] == ["QmA", "QmB"]
    assert tracker.health(95.0).last_change == 90.0  # the newest change


def test_tracker_without_admin() -> None:
    tracker = ElectionTracker()
    tracker.observe([member("QmA", 1.0, status=Status.UNHEALTHY)], 0.0)
    health = tracker.health(10.0)
    assert health.admin is None and health.admin_uptime is None and health.term is None
    assert (health.stability, health.healthy) == (0.0, False)
    change = tracker.observe([member("QmA", 1.0)], 12.0)
    assert change == LeadershipChange(12.0, None, "QmA")
    assert tracker.health(12.0).healthy


def test_tracker_keeps_a_bounded_log() -> None:
    tracker = ElectionTracker(keep=3)
    a, b = member("QmA", 1.0), member("QmB", 2.0)
    tracker.observe([a], 0.0)
    for i in range(1, 11):
        tracker.observe([a] if i % 2 == 0 else [b], float(i))
    assert len(tracker.changes()) == 3
    assert tracker.health(10.0).changes_total == 10


@pytest.mark.parametrize("bad", [{"window": 0.0}, {"max_changes": -1}, {"keep": 0}])
def test_tracker_arguments(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ElectionTracker(**bad)  # type: ignore[arg-type]
