from __future__ import annotations

import pytest

from mesh.timefmt import go_duration, rfc3339, to_nanos


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (86400, "24h0m0s"),
        (90, "1m30s"),
        (3661, "1h1m1s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (0.0000015, "1.5µs"),
        (9015, "2h30m15s"),
        (-2, "-2s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("unix", "text"),
    [
        (1759228200, "2025-09-30T10:30:00Z"),
        (1759228200.25, "2025-09-30T10:30:00.25Z"),
    ],
)
def test_rfc3339(unix: float, text: str) -> None:
    assert rfc3339(unix) == text


def test_nanos() -> None:
    assert to_nanos(0.015) == 15_000_000
    assert to_nanos(86400) == 86_400_000_000_000
