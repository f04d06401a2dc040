"""The pure parts of ``python -m devnet.scale_run``: reading the namespaces' counters, the
per-observer detection times and the false deaths from history entries, and the table."""

from __future__ import annotations

import pytest

from devnet.bench_target import light_view
from devnet.cluster import DevnetError
from devnet.scale_counts import (
    detection,
    false_deaths,
    logged_transitions,
    nearest_rank,
    parse_net_dev,
)
from devnet.scale_report import render
from devnet.scale_sim import simulate

# /proc/net/dev, its columns squeezed: 8 receive counters, then bytes and packets sent.
NET_DEV = """\
Inter-|   Receive                   |  Transmit
 face |bytes packets e d f f c m|bytes packets e d f c c c
    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0
  eth0: 5000000 40000 0 0 0 0 0 0 2000000 10000 0 0 0 0 0 0
"""


def test_net_dev_gives_ip_bytes_and_packets_sent_on_the_interface() -> None:
    assert parse_net_dev(NET_DEV, "eth0") == (2_000_000 - 14 * 10_000, 10_000)
    assert parse_net_dev(NET_DEV, "lo") == (100 - 28, 2)
    with pytest.raises(DevnetError):
        parse_net_dev(NET_DEV, "eth1")


def test_detection_takes_each_observers_first_dead_at_or_after_the_signal() -> None:
    entries = {
        (1, "v", "suspect", 100.5),
        (1, "v", "dead", 101.0),
        (1, "v", "dead", 101.002),  # the same transition, polled again
        (2, "v", "dead", 99.0),  # an earlier death of the victim, before this signal
        (2, "v", "dead", 103.0),
        (3, "other", "dead", 100.7),  # someone else
        (4, "v", "dead", 102.0),  # not an observer asked for
    }
    assert detection(entries, "v", {1, 2, 3}, sent=100.0) == {1: 1.0, 2: 3.0}


def test_false_deaths_excuse_each_observers_detection_of_a_victim_only() -> None:
    entries = {
        (1, "v", "dead", 101.0),  # the crash being measured, seen by observer 1
        (1, "v", "dead", 101.004),  # the same transition, from a poll
        (2, "v", "dead", 190.0),  # observer 2's detection, late but its first
        (1, "v", "dead", 300.0),  # the victim again, long after it came back: false
        (1, "w", "dead", 150.149),  # a live member: false ...
        (1, "w", "dead", 150.151),  # ... once, though the copies straddle a 0.1 s mark
        (2, "w", "suspect", 150.0),  # a suspicion is no death
        (3, "v", "dead", 99.0),  # a death of the victim before its signal: false
    }
    assert false_deaths(entries, {"v": 100.0}) == 3
    assert false_deaths(entries, {}) == 5


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 30)]  # 29 observers
    assert nearest_rank(values, 0.5) == 15.0
    assert nearest_rank(values, 0.99) == 29.0
    assert nearest_rank([2.0], 0.99) == 2.0


def test_render_marks_what_was_not_seen() -> None:
    result = {
        "n": 30,
        "loss_percent": 1,
        "commit": "abc1234",
        "date": "2026-12-03",
        "real": {
            "converge": 1.5,
            "crash": {"p50": 0.5, "p99": None, "seen": 27, "observers": 29},
            "idle": {"bytes_per_s": 12000.0, "packets_per_s": 40.0, "cpu_percent": 4.0},
        },
        "sim": simulate(5, 0.0, [1], 0.5),
    }
    table = render(result)
    assert (
        "| crash (SIGKILL node 2): seen dead, p50 / p99 of observers |"
        " 0.50 s / n/a (27 of 29 saw it) |" in table
    )
    assert "| join: last node ready → every view agrees | 1.50 s |" in table
    assert "12,000 B/s" in table


def test_logged_transitions_read_the_nodes_own_log_lines() -> None:
    lines = [
        '{"time": "2026-12-03T11:58:22.930Z", "level": "info", "logger": "adapters.gossip",'
        ' "message": "cluster: 12D3KooWPeer alive -> suspect (ping_failed, by 12D3KooWMe)"}',
        '{"time": "2026-12-03T11:58:28.000Z", "level": "info", "logger": "adapters.gossip",'
        ' "message": "cluster: 12D3KooWPeer suspect -> dead (suspicion_timeout, 2 confirmations)"}',
        '{"time": "2026-12-03T11:58:29.000Z", "message": "ping to 12D3KooWPeer not answered"}',
        "not json at all",
        '{"message": "cluster: 12D3KooWPeer dead -> alive (digest)"}',  # no time: skipped
    ]
    found = logged_transitions(7, lines)
    assert {(o, p, to) for o, p, to, _ in found} == {
        (7, "12D3KooWPeer", "suspect"),
        (7, "12D3KooWPeer", "dead"),
    }
    dead = next(at for _, _, to, at in found if to == "dead")
    assert dead - next(at for _, _, to, at in found if to == "suspect") == pytest.approx(5.07)


def test_light_view_fills_in_the_alive_members_only_when_the_counts_say_so() -> None:
    names = {"a": 1, "b": 2, "c": 3, "d": 4}
    dead_b = {"peer_id": "b", "state": "dead"}
    body = {"counts": {"alive": 3, "dead": 1}, "peers": [dead_b]}
    assert light_view(body, names) == {1: "alive", 2: "dead", 3: "alive", 4: "alive"}
    # Two alive: one of a, c, d is missing from the view, and nobody says which.
    assert light_view({"counts": {"alive": 2}, "peers": [dead_b]}, names) == {2: "dead"}
    # Members from outside the devnet are not ours to report; garbage is skipped.
    stranger = {"peer_id": "zz", "state": "suspect"}
    body = {"counts": {"alive": 4}, "peers": [stranger, "junk"]}
    assert light_view(body, names) == dict.fromkeys(range(1, 5), "alive")
    assert light_view({"peers": []}, names) == {}
