"""Wire formats for time, matching what Go's encoding/json and time packages print.

The reference document shows latencies and uptimes as integer nanoseconds (Go's
``time.Duration`` marshals that way), timestamps as RFC 3339 in UTC, and the live
probe's uptime as ``Duration.String()`` (``24h0m0s``). Internally we keep seconds as floats.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

NANOS_PER_SECOND = 1_000_000_000


def to_nanos(seconds: float) -> int:
    """Seconds as integer nanoseconds, the JSON form of a Go ``time.Duration``."""
    return round(seconds * NANOS_PER_SECOND)


def rfc3339(unix_seconds: float) -> str:
    """A Unix time as RFC 3339 in UTC with a ``Z`` suffix; whole seconds have no fraction."""
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    if moment.microsecond:
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    else:
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z"


def go_duration(seconds: float) -> str:
    """Format like Go's ``Duration.String()``: ``24h0m0s``, ``1m30s``, ``1.5s``, ``250ms``, ``0s``.

    Sub-second parts are kept to millisecond precision: probes do not need more, and the
    strings stay short.
    """
    if seconds < 0:
        return "-" + go_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        if millis >= 1:
            return _trim(f"{millis:.3f}") + "ms"
        micros = seconds * 1_000_000
        if micros >= 1:
            return _trim(f"{micros:.3f}") + "µs"
        return f"{round(seconds * NANOS_PER_SECOND)}ns"
    whole_ms = round(seconds * 1000)
    hours, rest_ms = divmod(whole_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs = _trim(f"{rest_ms / 1000:.3f}")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
