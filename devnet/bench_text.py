"""How the bench writes a measured figure, in its log lines and in every report section.

Its own module because every part (detection runs, costs, soaks, partitions) and the report
print figures the same way, and none of them should import another for it.
"""

from __future__ import annotations

__all__ = ["fmt"]


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    """``value`` with its unit, or "n/a" for a figure that was not measured."""
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()
