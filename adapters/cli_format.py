"""The operator commands' output, pure: values in, lines out (adapters/members_cli.py).

Durations as people read them ("3m12s ago", "148ms"), never the wire's nanoseconds;
tables as ``serf members`` prints them, columns padded to their widest cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from adapters.client import ClusterView, PeerView

__all__ = [
    "SERVING",
    "ago",
    "checks_table",
    "human_duration",
    "members_table",
    "printable",
    "seconds_since",
    "status_lines",
    "verdict",
]

SERVING = ("healthy", "degraded")  # mesh.model.Status.serving: /health answers 200


def human_duration(seconds: float) -> str:
    """``<1ms``, ``420ms``, ``4.2s``, ``42s``, ``3m12s``, ``2h5m``, ``3d4h``: two units at most,
    rounded down, like an uptime; negative values (clock skew) read as 0."""
    if seconds <= 0:
        return "0s"
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 10:
        return f"{int(seconds * 10) / 10:.1f}s"
    whole = int(seconds)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{whole % size // small_size}{small}"
    return f"{whole}s"


def ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{human_duration(seconds)} ago"


def seconds_since(stamp: object, now: float) -> float | None:
    """Seconds from an RFC 3339 time (as the node writes them) to ``now`` (Unix seconds)."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return now - moment.timestamp()


# Widest cell: a peer id is 52 characters; anything longer a peer chose is cut.
MAX_CELL = 64


def printable(text: object, limit: int = 0) -> str:
    """``text`` fit for an operator's terminal. Much of what we print a peer chose (its
    version, addresses, a check's message): an escape sequence would repaint the screen or
    retitle the window, a newline forge a row, a bidi override reorder one. Every
    unprintable character becomes "?"; ``limit`` (0: none) cuts the rest with "…"."""
    safe = "".join(c if c.isprintable() else "?" for c in str(text))
    return safe if not limit or len(safe) <= limit else safe[: limit - 1] + "\u2026"


def _grid(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [[printable(cell, MAX_CELL) for cell in row] for row in rows]
    widths = [max([len(h), *(len(r[c]) for r in rows)]) for c, h in enumerate(headers)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.2f}"


def _address(peer: PeerView) -> str:
    """Where to ask the member next (its HTTP address), else its first libp2p address."""
    if peer.http_addr:
        return peer.http_addr
    return peer.p2p_addrs[0].split("/p2p/")[0] if peer.p2p_addrs else "-"


def _tags(peer: PeerView, admin: str | None) -> str:
    tags = [t for t, on in (("self", peer.is_self), ("admin", peer.peer_id == admin)) if on]
    if peer.suspected_by:
        tags.append(f"suspected-by={len(peer.suspected_by)}")
    return ",".join(tags) or "-"


def members_table(view: ClusterView) -> list[str]:
    """A summary line, then one row per member: the observer first, then by peer id."""
    counts = ", ".join(f"{n} {state}" for state, n in view.counts().items())
    head = (
        f"view of {view.node_id}: cluster {view.status or '?'} (score {_score(view.score)});"
        f" {counts}; admin {view.admin or 'none'}"
    )
    peers = sorted(view.peers, key=lambda p: (not p.is_self, p.peer_id))
    rows = [
        (
            p.peer_id,
            _address(p),
            p.state,
            p.status or "-",
            _score(p.score),
            "now" if p.is_self else ago(p.last_seen_age),
            p.version or "-",
            _tags(p, view.admin),
        )
        for p in peers
    ]
    headers = ("PEER", "ADDRESS", "STATE", "STATUS", "SCORE", "LAST SEEN", "VERSION", "TAGS")
    return [printable(head), *_grid(headers, rows)]


def checks_table(body: Mapping[str, Any], now: float) -> list[str]:
    """One row per check of a /health/checks body; ``now`` in Unix seconds."""
    rows = []
    for name, check in sorted(body.get("checks", {}).items()):
        healthy = check.get("healthy")
        latency = check.get("latency")
        rows.append(
            (
                name,
                str(check.get("state", "-")) if check.get("enabled", True) else "disabled",
                "-" if healthy is None else ("yes" if healthy else "no"),
                "yes" if check.get("critical") else "no",
                ago(seconds_since(check.get("last_run"), now)),
                human_duration(latency / 1e9) if isinstance(latency, int | float) else "-",
                str(check.get("message") or check.get("error") or ""),
            )
        )
    headers = ("CHECK", "STATE", "HEALTHY", "CRITICAL", "LAST RUN", "LATENCY", "MESSAGE")
    return _grid(headers, rows)


def status_lines(health: Mapping[str, Any], view: ClusterView | None) -> list[str]:
    """The node's own /health, then its cluster view's verdict (None: not asked)."""
    uptime = health.get("uptime")
    up = human_duration(uptime / 1e9) if isinstance(uptime, int | float) else "?"
    lines = [
        f"node     {health.get('node_id') or '?'}  {health.get('version') or ''}  up {up}",
        f"status   {health.get('status')}: {health.get('message') or ''}".rstrip(": "),
    ]
    failing = sorted(n for n, c in health.get("checks", {}).items() if not c.get("healthy"))
    if failing:
        lines.append(f"failing  {', '.join(failing)}")
    if view is not None:
        counts = ", ".join(f"{n} {state}" for state, n in view.counts().items())
        lines.append(
            f"cluster  {view.status or '?'} (score {_score(view.score)}); {counts};"
            f" admin {view.admin or 'none'}"
        )
    return [printable(line) for line in lines]


def verdict(health: Mapping[str, Any], view: ClusterView | None, *, strict: bool) -> bool:
    """Whether ``status`` exits 0: the node, and its cluster view, serving (or healthy)."""
    good = ("healthy",) if strict else SERVING
    return health.get("status") in good and (view is None or view.status in good)
