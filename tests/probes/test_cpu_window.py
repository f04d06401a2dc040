"""Tests of probes.cpu_window: readings and times as plain values, no clock, no machine."""

from __future__ import annotations

import pytest

from probes.cpu_window import CPU_MIN_SPAN, CPU_POINTS, CPU_WINDOW, CpuMean, CpuWindow


def feed(window: CpuWindow, readings: list[tuple[float, float]]) -> CpuWindow:
    for now, fraction in readings:
        window.add(now, fraction)
    return window


def test_defaults_are_a_minute_in_5_s_buckets_judged_after_half() -> None:
    assert (CPU_WINDOW, CPU_POINTS, CPU_MIN_SPAN) == (60.0, 12, 30.0)


def test_the_priming_reading_is_reported_but_never_judged() -> None:
    # A node's first check: the reading covers its own start-up, of unknown length.
    window = feed(CpuWindow(), [(100.0, 1.0)])
    assert window.mean(100.0) == CpuMean(mean=1.0, span=0.0, judged=False, latest=1.0)


@pytest.mark.parametrize(
    ("readings", "now", "mean", "span", "judged"),
    [
        # One full minute at 40 %.
        ([(0.0, 0.9), (60.0, 0.4)], 60.0, 0.4, 60.0, True),
        # Time-weighted: 20 s at 100 % and 40 s at 10 %.
        ([(0.0, 0.0), (20.0, 1.0), (60.0, 0.1)], 60.0, (20 * 1.0 + 40 * 0.1) / 60, 60.0, True),
        # Too little seen yet (29 s of the 30 s needed), however busy.
        ([(0.0, 0.0), (29.0, 1.0)], 29.0, 1.0, 29.0, False),
        ([(0.0, 0.0), (30.0, 1.0)], 30.0, 1.0, 30.0, True),
        # The oldest bucket straddles the window's start: only its last 10 s count.
        ([(0.0, 0.0), (20.0, 1.0), (70.0, 0.2)], 70.0, (10 * 1.0 + 50 * 0.2) / 60, 60.0, True),
        # Asked later than the last reading: the window slides over what it has.
        ([(0.0, 0.0), (60.0, 0.5)], 80.0, 0.5, 40.0, True),
        ([(0.0, 0.0), (60.0, 0.5)], 150.0, 0.5, 0.0, False),  # `mean` falls back to `latest`
    ],
)
def test_mean_over_the_window(
    readings: list[tuple[float, float]], now: float, mean: float, span: float, judged: bool
) -> None:
    result = feed(CpuWindow(), readings).mean(now)
    assert result.mean == pytest.approx(mean)
    assert result.span == pytest.approx(span)
    assert result.judged is judged


def test_a_start_up_spike_is_diluted_by_the_minute_after_it() -> None:
    # Primed at 0, 15 s of start-up at 100 %, then idle at 5 % until the next check at 60 s.
    window = feed(CpuWindow(), [(0.0, 1.0), (15.0, 1.0), (60.0, 0.05)])
    cpu = window.mean(60.0)
    assert cpu.judged
    assert cpu.mean == pytest.approx((15 * 1.0 + 45 * 0.05) / 60)  # 28.75 %
    assert cpu.mean < 0.9


def test_a_sustained_overload_is_judged_as_such() -> None:
    window = CpuWindow()
    for second in range(0, 181, 5):
        window.add(float(second), 0.95)
        cpu = window.mean(float(second))
        assert cpu.judged is (second >= 30)
    assert cpu.mean == pytest.approx(0.95)
    assert cpu.span == pytest.approx(60.0)


def test_an_overload_that_ended_a_window_ago_no_longer_counts() -> None:
    window = CpuWindow()
    feed(window, [(float(t), 1.0) for t in range(0, 61, 5)])
    feed(window, [(float(t), 0.1) for t in range(65, 121, 5)])
    assert window.mean(120.0).mean == pytest.approx(0.1)


@pytest.mark.parametrize("step", [0.001, 0.37, 1.0, 4.99, 5.0, 7.5, 30.0])
def test_memory_stays_bounded_whatever_the_reading_rate(step: float) -> None:
    # A check run on demand in a loop must not grow the window, nor shrink what it covers.
    window = CpuWindow(points=12)
    now = 0.0
    window.add(now, 0.5)
    while now < 200.0:
        now += step
        window.add(now, 0.5)
        assert len(window) <= 12 + 2
    cpu = window.mean(now)
    assert cpu.span == pytest.approx(60.0)
    assert cpu.mean == pytest.approx(0.5)


def test_merged_readings_keep_their_time_weights() -> None:
    # 1 s at 100 % then 3 s at 0 % land in one 5 s bucket: 25 %, not the 50 % of a plain mean.
    window = feed(CpuWindow(min_span=0.0), [(0.0, 0.0), (1.0, 1.0), (4.0, 0.0)])
    assert len(window) == 1
    assert window.mean(4.0).mean == pytest.approx(0.25)


def test_a_clock_that_does_not_move_adds_nothing() -> None:
    window = feed(CpuWindow(), [(0.0, 0.0), (60.0, 0.2), (60.0, 1.0)])
    cpu = window.mean(60.0)
    assert cpu.mean == pytest.approx(0.2)
    assert cpu.latest == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0.0}, "window must be a positive"),
        ({"window": float("nan")}, "window must be a positive"),
        ({"points": 0}, "points must be at least 1"),
        ({"min_span": -1.0}, "min_span must be within"),
        ({"window": 10.0, "min_span": 11.0}, "min_span must be within"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CpuWindow(**kwargs)  # type: ignore[arg-type]
