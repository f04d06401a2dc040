"""When a change of ours is news (``adapters.publish_decisions.is_news``): a digest goes out at once
for a new status or address, or a score fallen by SCORE_BUCKET since we published it; a
score that rose, or drifted or jittered by less, waits for the refresh."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.publish_decisions import SCORE_BUCKET, Said, is_news
from mesh.model import Status

BASE = Said(
    Status.HEALTHY,
    0.975,
    {"election-health": 0.874, "memory": 0.9},
    "http://10.0.0.1:8081",
    ("/ip4/10.0.0.1/tcp/9000/p2p/P",),
)


def test_nothing_published_yet_is_news() -> None:
    assert is_news(None, BASE)


@pytest.mark.parametrize("score", [0.974, 0.976, 0.9749, 0.9751, 0.93, 1.0])
def test_a_score_jittering_across_a_bucket_edge_is_no_news(score: float) -> None:
    # round(0.974 / 0.05) == 19 and round(0.976 / 0.05) == 20: bucket indexes flipped here.
    assert not is_news(BASE, replace(BASE, score=score))
    moved = {"election-health": score - 0.1 + 0.0001, "memory": 0.9}
    assert not is_news(BASE, replace(BASE, components=moved))


@pytest.mark.parametrize("delta", [SCORE_BUCKET, 0.3])
def test_a_score_fallen_a_whole_bucket_is_news(delta: float) -> None:
    said = replace(BASE, score=0.9)
    assert is_news(said, replace(said, score=0.9 - delta))
    comps = {"election-health": 0.874 - delta, "memory": 0.9}
    assert is_news(said, replace(said, components=comps))


@pytest.mark.parametrize("delta", [SCORE_BUCKET, 0.1, 0.5])
def test_a_score_that_rose_waits_for_the_refresh(delta: float) -> None:
    said = replace(BASE, score=0.5, components={"election-health": 0.45, "memory": 0.9})
    assert not is_news(said, replace(said, score=0.5 + delta))
    comps = {"election-health": 0.45 + delta, "memory": 0.9}
    assert not is_news(said, replace(said, components=comps))


def test_a_recovery_that_changes_the_status_is_news() -> None:
    said = replace(BASE, status=Status.DEGRADED, score=0.5)
    assert is_news(said, replace(said, status=Status.HEALTHY, score=0.95))


def test_a_slow_fall_is_news_once_it_adds_up() -> None:
    said, published = BASE, 0
    for step in range(1, 21):  # 0.874 -> 0.774 in 0.005 steps
        now = replace(said, components={"election-health": 0.874 - 0.005 * step, "memory": 0.9})
        if is_news(said, now):
            said, published = now, published + 1
    assert published == 2  # at -0.05 and -0.10, not at every edge in between


def test_the_election_climbing_after_a_change_is_no_news() -> None:
    # 0.5 + 0.5 * stability after the admin changed 20 s into a node's life, read by the
    # check every 15 s: each step moved the component by 0.05-0.2 and made a digest.
    said, published = replace(BASE, components={"election-health": 0.5, "memory": 0.9}), 0
    for age in range(35, 200, 15):
        climbed = 0.5 + 0.5 * (age - 20) / age
        now = replace(said, components={"election-health": climbed, "memory": 0.9})
        if is_news(said, now):
            said, published = now, published + 1
    assert published == 0


@pytest.mark.parametrize(
    "change",
    [
        {"status": Status.DEGRADED},
        {"http_addr": "http://10.0.0.2:8081"},
        {"p2p_addrs": ()},
        {"local_health": 7},  # a starved node asks for more time at once
        {"components": {"election-health": 0.874}},  # a check went away
        {"components": {"election-health": 0.874, "memory": 0.9, "disk-space": 1.0}},
    ],
)
def test_anything_but_a_score_is_news(change: dict[str, object]) -> None:
    assert is_news(BASE, replace(BASE, **change))  # type: ignore[arg-type]
