"""The operator commands' tables and durations, with plain values (adapters/cli_format.py)."""

from __future__ import annotations

import pytest

from adapters.cli_format import ago, checks_table, human_duration, members_table, verdict
from adapters.client import ClusterView, PeerView


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3.0, "0s"),
        (0.0, "0s"),
        (0.0004, "<1ms"),
        (0.42, "420ms"),
        (4.26, "4.2s"),
        (42.9, "42s"),
        (192.0, "3m12s"),
        (3600.0, "1h0m"),
        (7512.0, "2h5m"),
        (3 * 86400 + 4 * 3600 + 59, "3d4h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_ago_shows_a_dash_for_no_age() -> None:
    assert (ago(None), ago(192.5)) == ("-", "3m12s ago")


ME, OTHER, GONE = "12D3KooWMe", "12D3KooWOther", "12D3KooWGone"


def test_members_table_lists_self_first_with_admin_and_addresses() -> None:
    view = ClusterView(
        node_id=ME,
        status="degraded",
        score=0.5,
        admin=OTHER,
        peers=(
            PeerView(GONE, False, "dead", "healthy", 0.9, 75.0, suspected_by=(ME, OTHER)),
            PeerView(OTHER, False, "alive", "healthy", 1.0, 0.4, "http://10.0.0.2:8081"),
            PeerView(ME, True, "alive", "degraded", 0.25, None, None, ("/ip4/10.0.0.1/tcp/9000",)),
        ),
    )
    head, header, *rows = members_table(view)
    assert head == (
        f"view of {ME}: cluster degraded (score 0.50); 2 alive, 0 suspect, 1 dead, 0 left;"
        f" admin {OTHER}"
    )
    assert [r.split() for r in rows] == [
        [ME, "/ip4/10.0.0.1/tcp/9000", "alive", "degraded", "0.25", "now", "-", "self"],
        [GONE, "-", "dead", "healthy", "0.90", "1m15s", "ago", "-", "suspected-by=2"],
        [OTHER, "http://10.0.0.2:8081", "alive", "healthy", "1.00", "400ms", "ago", "-", "admin"],
    ]
    assert header.split()[:3] == ["PEER", "ADDRESS", "STATE"]


def test_checks_table_turns_nanoseconds_and_timestamps_into_ages() -> None:
    body = {
        "checks": {
            "disk-space": {
                "healthy": False,
                "message": "Disk usage at 97%",
                "latency": 1_500_000,
                "critical": False,
                "enabled": True,
                "last_run": "2030-01-01T00:00:00Z",
                "state": "failing",
            },
            "memory": {"enabled": False, "critical": True, "last_run": None},
        }
    }
    now = 1893456000.0 + 192  # 2030-01-01T00:03:12Z
    assert [r.split() for r in checks_table(body, now)[1:]] == [
        ["disk-space", "failing", "no", "no", "3m12s", "ago", "1ms", "Disk", "usage", "at", "97%"],
        ["memory", "disabled", "-", "yes", "-", "-"],
    ]


@pytest.mark.parametrize(
    ("node", "cluster", "strict", "ok"),
    [
        ("healthy", "healthy", False, True),
        ("degraded", "degraded", False, True),
        ("degraded", "healthy", True, False),
        ("unhealthy", "healthy", False, False),
        ("healthy", "unhealthy", False, False),
        ("healthy", "starting", False, False),
        ("stopping", "healthy", False, False),
    ],
)
def test_status_verdict(node: str, cluster: str, strict: bool, ok: bool) -> None:
    view = ClusterView(node_id=ME, status=cluster, score=1.0, admin=None, peers=())
    assert verdict({"status": node}, view, strict=strict) is ok


def test_what_peers_chose_cannot_drive_the_operators_terminal() -> None:
    # A member picks its own version and addresses (gossip): an escape sequence there
    # would clear or repaint the operator's screen, a newline forge a row of its own.
    evil = "v1\x1b[2J\x1b]0;owned\x07\nFAKE  alive  healthy\u202e"
    view = ClusterView(
        node_id=ME,
        status="healthy",
        score=1.0,
        admin=None,
        peers=(PeerView(OTHER, False, "alive", "healthy", 1.0, 0.4, evil, (), version=evil * 9),),
    )
    lines = members_table(view)
    checks = checks_table({"checks": {evil: {"message": evil, "state": evil}}}, 0.0)
    for line in [*lines, *checks]:
        assert line.isprintable(), repr(line)
    assert len(lines) == 3  # summary, header, one member: no forged row
    assert all(len(line) < 400 for line in lines)  # a long string is cut, not a screenful
