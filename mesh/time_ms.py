"""Unix milliseconds as RFC 3339 text and back, exact to the millisecond.

A member certificate's expiry is signed as Unix milliseconds and written in its file as
RFC 3339 (``mesh.admission_formats``); issuing one checks that the expiry is a time that
text can say (``mesh.certificate``). Unlike ``mesh.timefmt`` (Go's JSON shapes, from float
seconds), nothing here rounds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_MS", "MIN_MS", "format_time_ms", "parse_time_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# What RFC 3339 timestamps can say: years 0001-9999.
MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # \d would otherwise take any Unicode digit
)


def format_time_ms(unix_ms: int) -> str:
    """Unix milliseconds as RFC 3339 in UTC: ``2025-01-31T12:00:00Z`` or ``...00.250Z``."""
    moment = _EPOCH + unix_ms * _ONE_MS
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    millis = unix_ms % 1000
    return text + (f".{millis:03d}Z" if millis else "Z")


def parse_time_ms(text: str) -> int:
    """An RFC 3339 timestamp (any offset) as Unix milliseconds; ``ValueError`` if it is not one.

    Finer than a millisecond is refused rather than rounded: a certificate signs the exact
    millisecond, and rounding would turn a hand-edited file into a bad signature instead of
    a clear error.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an RFC 3339 time like 2025-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    if fraction[3:].strip("0"):
        raise ValueError(f"{text!r} is finer than a millisecond")
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid time: {exc}") from None
    millis = (moment - _EPOCH) // _ONE_MS + int(fraction[:3].ljust(3, "0"))
    if match.group(9):  # a numeric offset: local time = UTC + offset
        offset_hours, offset_minutes = int(match.group(10)), int(match.group(11))
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError(f"{text!r} has no valid UTC offset")
        offset_ms = (offset_hours * 60 + offset_minutes) * 60_000
        millis += -offset_ms if match.group(9) == "+" else offset_ms
    return millis
