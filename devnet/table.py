"""The cluster table, and drawing it in place on a terminal with plain ANSI (no curses).

``render`` is a pure function of a snapshot and the run state, so it is tested with plain
values. ``LiveDisplay`` redraws a frame over the previous one when stdout is a terminal,
and otherwise prints a frame only when it changed (a log file stays readable).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from devnet.cluster import Proc, RunState, Snapshot, agreement

__all__ = ["LiveDisplay", "Progress", "endpoints", "render", "short_peer", "use_color"]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
COLORS = {
    "alive": "32",  # green
    "healthy": "32",
    "suspect": "33",  # yellow
    "degraded": "33",
    "starting": "33",
    "frozen": "33",
    "dead": "31",  # red
    "unhealthy": "31",
    "exited": "31",
    "left": "2",  # dim
    "stopping": "2",
}
HEADERS = ("node", "peer", "process", "state", "status", "score", "last seen", "admin", "agree")


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def short_peer(peer_id: str) -> str:
    return peer_id if len(peer_id) <= 14 else f"{peer_id[:8]}…{peer_id[-4:]}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    return f"{seconds / 60:.0f}m ago"


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.2f}"


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]


def _observer(snap: Snapshot, prefer: int | None) -> int | None:
    """The node whose view the table shows: the preferred one if it answered, else the
    lowest-numbered node that did."""
    if prefer is not None and prefer in snap.views:
        return prefer
    return min(snap.views) if snap.views else None


def render(
    snap: Snapshot,
    state: RunState,
    *,
    observer: int | None = None,
    color: bool = False,
    title: str = "devnet",
) -> list[str]:
    """The table's lines: a header line, then one row per peer as the observer sees it.

    Columns: node (devnet index), peer (short id), process (what the OS says), then the
    observer's verdict on the peer (state, the status and score the peer reports, when it
    was last heard from, a star on the admin the observer elected), and "agree": how many
    of the answering nodes see the peer in that same state.
    """
    names = state.by_peer()
    counts = {p: sum(1 for v in snap.procs.values() if v is p) for p in Proc}
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
    head = (
        f"{title}: {len(state.nodes)} nodes ({counts[Proc.RUNNING]} running,"
        f" {counts[Proc.FROZEN]} frozen, {counts[Proc.EXITED]} exited)"
    )
    if state.partition:
        head += "  partitioned " + " | ".join(
            ",".join(f"node{i}" for i in group) for group in state.partition
        )
    who = _observer(snap, observer)
    if who is None:
        return [f"{head}  {stamp}", *_fallback(snap, state, color)]
    view = snap.views[who]
    agreed = agreement(snap.views, snap.expected(state))
    admin = view.admin
    admin_name = f"node{names[admin]}" if admin in names else short_peer(admin or "-")
    verdict = (
        "converged"
        if agreed.converged
        else (f"converging ({len(agreed.agreeing)}/{len(agreed.expected)} agree)")
    )
    lines = [
        f"{head}  view of node{who}  {verdict}  admin {admin_name}  {stamp}",
    ]
    rows: list[tuple[str, ...]] = []
    listed: set[str] = set()
    ordered = sorted(view.peers, key=lambda p: (names.get(p.peer_id, 10**6), p.peer_id))
    for peer in ordered:
        listed.add(peer.peer_id)
        index = names.get(peer.peer_id)
        same = sum(1 for v in snap.views.values() if v.state_of(peer.peer_id) == peer.state)
        rows.append(
            (
                f"node{index}" if index is not None else "?",
                short_peer(peer.peer_id),
                snap.procs[index].value if index in snap.procs else "?",
                peer.state,
                peer.status or "-",
                _score(peer.score),
                "self" if peer.is_self else _age(peer.last_seen_age),
                "★" if peer.peer_id == admin else "",
                f"{same}/{len(snap.views)}",
            )
        )
    for index, rec in sorted(state.nodes.items()):
        if rec.peer_id and rec.peer_id not in listed:
            rows.append(
                (
                    rec.name,
                    short_peer(rec.peer_id),
                    snap.procs.get(index, Proc.EXITED).value,
                    "unknown",
                    "-",
                    "-",
                    "-",
                    "",
                    f"0/{len(snap.views)}",
                )
            )
    lines += _grid(rows, color)
    silent = {i: e for i, e in snap.errors.items() if snap.procs.get(i) is Proc.RUNNING}
    if silent:
        lines.append(
            "no answer from " + ", ".join(f"node{i} ({err})" for i, err in sorted(silent.items()))
        )
    return lines


def _fallback(snap: Snapshot, state: RunState, color: bool) -> list[str]:
    """Without any cluster view (older nodes, or none answering): each node's own /health."""
    rows: list[tuple[str, ...]] = []
    for index, rec in sorted(state.nodes.items()):
        body = snap.health.get(index, {})
        rows.append(
            (
                rec.name,
                short_peer(rec.peer_id) if rec.peer_id else "-",
                snap.procs.get(index, Proc.EXITED).value,
                "-",
                str(body.get("status", "-")),
                _score(body.get("score") if isinstance(body.get("score"), float) else None),
                "-",
                "",
                "-",
            )
        )
    note = (
        "the nodes serve no /health/cluster: showing their own /health"
        if snap.health
        else "no node answers"
    )
    return [*_grid(rows, color), note]


def _grid(rows: Sequence[tuple[str, ...]], color: bool) -> list[str]:
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    for row in rows:
        cells = []
        for cell, width in zip(row, widths, strict=True):
            padded = cell.ljust(width)
            code = COLORS.get(cell) if color else None
            cells.append(f"\x1b[{code}m{padded}\x1b[0m" if code else padded)
        out.append("  ".join(cells).rstrip())
    return out


def endpoints(state: RunState) -> list[str]:
    """Each node's endpoints, for copying into curl, and where the logs are."""
    lines = [
        f"{rec.name}  pid {rec.pid}  {rec.http_url}/health/cluster  {rec.multiaddr}"
        for _index, rec in sorted(state.nodes.items())
    ]
    if state.nodes:
        first = state.nodes[min(state.nodes)]
        lines.append(f"logs: {str(first.log).replace(first.name, 'nodeN')}")
    return lines


def visible_len(line: str) -> int:
    return len(ANSI.sub("", line))


def fit(line: str, width: int) -> str:
    """Cut a line to the terminal width; a wrapped line would break the in-place redraw."""
    if visible_len(line) <= width:
        return line
    return ANSI.sub("", line)[: max(1, width - 1)] + "…"


class LiveDisplay:
    """Redraws a frame in place on a terminal; elsewhere prints frames that changed."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._height = 0
        self._last: list[str] = []

    def show(self, lines: Sequence[str], *, changed_key: Sequence[str] | None = None) -> None:
        """Draw ``lines``. Off a terminal, only when ``changed_key`` (default: the lines)
        differs from the last frame's, so a ticking clock does not repeat the table."""
        if self.tty:
            width = shutil.get_terminal_size().columns
            # Back to the first line of the previous frame, clear to the end of the screen.
            up = f"\x1b[{self._height}F" if self._height else ""
            body = "\n".join(fit(line, width) for line in lines)
            self.stream.write(f"{up}\x1b[J{body}\n")
            self._height = len(lines)
        else:
            key = list(changed_key if changed_key is not None else lines)
            if key != self._last:
                self.stream.write("\n".join(ANSI.sub("", line) for line in lines) + "\n\n")
            self._last = key
        self.stream.flush()


class Progress:
    """One status line, rewritten in place on a terminal; printed when it changes else."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._last = ""

    def __call__(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A line that stays (clears the status line first)."""
        self.stream.write(f"\r\x1b[K{text}\n" if self.tty else text + "\n")
        self.stream.flush()
        self._last = ""

    def done(self, text: str = "") -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}\n" if text else "\r\x1b[K")
        elif text:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last = ""
