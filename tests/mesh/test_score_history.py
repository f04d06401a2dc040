"""The cluster score's hourly past (mesh/score_history.py): buckets, their minimum, the
bound, and the sampling cadence, with plain times."""

from __future__ import annotations

import pytest

from mesh.score_history import ScoreHistory, ScorePoint


def test_each_bucket_keeps_its_lowest_reading() -> None:
    history = ScoreHistory(window=300, bucket=30, sample_every=5)
    for t, score in [(0, 1.0), (5, 0.4), (10, 0.9), (31, 0.8), (59, 0.95)]:
        history.record(t, score)
    # A 5 s dip to 0.4 stays visible; the next bucket's low is 0.8.
    assert history.points() == [ScorePoint(0, 0.4), ScorePoint(30, 0.8)]


def test_only_the_window_is_kept_whatever_the_uptime() -> None:
    history = ScoreHistory(window=300, bucket=30, sample_every=5)
    for t in range(0, 100_000, 5):
        history.record(t, 1.0)
    points = history.points()
    assert len(points) == 10
    assert points[0].at == 100_000 - 5 - (100_000 - 5) % 30 - 9 * 30


def test_readings_are_clamped_and_a_nan_is_a_zero() -> None:
    history = ScoreHistory(window=300, bucket=30, sample_every=5)
    history.record(0, 1.7)
    history.record(30, -2.0)
    history.record(60, float("nan"))
    assert [p.score for p in history.points()] == [1.0, 0.0, 0.0]


def test_observe_reads_the_score_only_when_a_sample_is_due() -> None:
    history = ScoreHistory(window=300, bucket=30, sample_every=5)
    reads: list[float] = []

    def score() -> float:
        reads.append(1.0)
        return 0.5

    for tick in range(0, 40):  # every 0.25 s for 10 s
        history.observe(tick * 0.25, score)
    assert len(reads) == 2  # at 0 s and at 5 s
    assert history.points() == [ScorePoint(0, 0.5)]


def test_an_earlier_time_adds_no_point() -> None:
    history = ScoreHistory(window=300, bucket=30, sample_every=5)
    history.record(90, 0.9)
    history.record(10, 0.1)
    assert history.points() == [ScorePoint(90, 0.9)]


@pytest.mark.parametrize(("window", "bucket", "every"), [(60, 60, 5), (300, 30, 0), (300, 30, 31)])
def test_impossible_shapes_are_refused(window: float, bucket: float, every: float) -> None:
    with pytest.raises(ValueError, match="sample_every"):
        ScoreHistory(window=window, bucket=bucket, sample_every=every)
