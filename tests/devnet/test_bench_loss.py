"""The loss soak's pure parts (devnet/bench_loss.py, devnet/netloss.py): the nft script,
reading its counters, the tally of the polls and histories, and the report section, with
plain values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devnet.bench_loss import loss_section
from devnet.bench_loss_counts import Tally, history_counts
from devnet.bench_report import render_markdown
from devnet.netloss import loss_ruleset, lossy_sources, parse_counters
from tests.devnet import bench_meta


def test_ruleset_drops_the_share_on_input_only_and_spares_the_bridge() -> None:
    script = loss_ruleset(20, "10.42.77.254")
    assert script.startswith("add table inet chorus_loss\ndelete table inet chorus_loss\n")
    assert "hook input" in script and "hook output" not in script
    assert (
        'iifname "eth0" ip saddr != 10.42.77.254 numgen random mod 100 < 20 counter drop' in script
    )
    # The counting rule sees what the dropping rule draws from.
    assert 'iifname "eth0" ip saddr != 10.42.77.254 counter\n' in script


@pytest.mark.parametrize("n", [3, 4, 5, 10, 20])
def test_one_way_loss_makes_exactly_one_direction_of_every_link_lossy(n: int) -> None:
    loses = {i: set(lossy_sources(i, n)) for i in range(1, n + 1)}
    for i in loses:
        for j in range(i + 1, n + 1):
            assert (j in loses[i]) != (i in loses[j]), (i, j)
        # Every node has links of both kinds: it loses on some, its peers on others.
        assert loses[i] and any(i in loses[j] for j in loses), i


def test_one_way_ruleset_matches_its_sources_only() -> None:
    script = loss_ruleset(20, "10.42.77.254", ["10.42.77.3", "10.42.77.5"])
    drop = 'iifname "eth0" ip saddr { 10.42.77.3, 10.42.77.5 } numgen random mod 100 < 20'
    assert drop in script and "!=" not in script
    with pytest.raises(ValueError, match="at least one source"):
        loss_ruleset(20, "10.42.77.254", [])


@pytest.mark.parametrize("percent", [-1, 101])
def test_ruleset_refuses_impossible_shares(percent: int) -> None:
    with pytest.raises(ValueError, match="0-100"):
        loss_ruleset(percent, "10.1.77.254")


def _listing(seen: int, dropped: int) -> str:
    """The shape of `nft -j list table inet chorus_loss` (nftables 1.0.6)."""
    match = [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": "10.1.77.254"}},
    ]  # fmt: skip
    base = {"family": "inet", "table": "chorus_loss", "chain": "input"}
    return json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
                {"table": {"family": "inet", "name": "chorus_loss", "handle": 1}},
                {"chain": {**base, "name": "input", "hook": "input", "policy": "accept"}},
                {"rule": {**base, "handle": 2,
                          "expr": [*match, {"counter": {"packets": seen, "bytes": 9}}]}},
                {"rule": {**base, "handle": 3, "expr": [
                    *match,
                    {"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 100}},
                               "right": 5}},
                    {"counter": {"packets": dropped, "bytes": 1}},
                    {"drop": None},
                ]}},
            ]
        }
    )  # fmt: skip


def test_counters_are_read_in_rule_order() -> None:
    assert parse_counters(_listing(5000, 952)) == (5000, 952)


def test_counters_refuse_a_table_that_is_not_ours() -> None:
    with pytest.raises(ValueError, match="two counters"):
        parse_counters(json.dumps({"nftables": [{"table": {"name": "other"}}]}))


def test_tally_counts_each_change_into_a_bad_state_once() -> None:
    tally = Tally()
    alive = {1: "alive", 2: "alive", 3: "alive"}
    tally.observe({1: alive, 2: alive, 3: alive}, 3)
    tally.observe({1: {**alive, 2: "suspect"}, 3: alive}, 3)  # node 2 did not answer
    tally.observe({1: {**alive, 2: "dead"}, 2: alive, 3: {**alive, 2: "dead"}}, 3)
    tally.observe({1: {**alive, 2: "dead"}, 2: alive, 3: {**alive, 1: "left"}}, 3)
    tally.observe({1: alive, 2: alive, 3: alive}, 3)
    tally.observe({1: {**alive, 2: "dead"}, 2: alive, 3: alive}, 3)  # dead again: counts
    assert tally.counts() == {"dead": 3, "suspect": 1, "left": 1, "polls": 6, "unanswered": 1}


def test_a_new_phase_starts_from_the_states_the_last_one_ended_with() -> None:
    first = Tally()
    first.observe({1: {1: "alive", 2: "dead"}}, 2)
    second = Tally(previous=dict(first.previous))
    second.observe({1: {1: "alive", 2: "dead"}}, 2)
    assert (first.dead, second.dead) == (1, 0)


def test_history_counts_each_distinct_transition_in_its_window() -> None:
    start = 1796223600.0  # 2026-12-02T15:00:00Z
    entries = {
        (1, "p2", "suspect", start + 5.0),
        (1, "p2", "suspect", start + 5.003),  # the same one, read again a little apart
        (1, "p2", "alive", start + 6.0),
        (1, "p2", "suspect", start + 7.0),  # again: a new suspicion
        (3, "p2", "suspect", start + 5.0),  # another observer: counts too
        (1, "p4", "dead", start + 90.0),
        (1, "p4", "dead", start - 60.0),  # before the soak
        (1, "p5", "dead", 0.0),  # an unreadable time
    }
    windows = [(start, start + 60), (start + 60, start + 120)]
    assert history_counts(entries, windows) == [
        {"dead": 0, "suspect": 3},
        {"dead": 1, "suspect": 0},
    ]


def _phase(
    percent: int, ours: dict[str, Any], serf: dict[str, Any], one_way: bool = False
) -> dict[str, Any]:
    zero = {"dead": 0, "suspect": 0, "left": 0, "polls": 300, "unanswered": 0,
            "measured_loss": percent / 100, "packets": 1000}  # fmt: skip
    return {
        "percent": percent,
        "one_way": one_way,
        "minutes": 5.0,
        "chorus": {**zero, "history": {"dead": 0, "suspect": 4}, **ours},
        "Serf": {**zero, "logged": {"failed": 2, "suspect": 7}, **serf},
    }


def test_section_lists_both_phases_side_by_side_and_the_kill() -> None:
    result = {
        "n": 10,
        "minutes": 10.0,
        "converged_before": {"chorus": True, "Serf": False},
        "phases": [
            _phase(5, {}, {}),
            _phase(20, {"history": {"dead": 0, "suspect": 9}}, {}, one_way=True),
            _phase(20, {"dead": 1, "history": {"dead": 3, "suspect": 40}}, {"left": 1}),
        ],
        "kill": {"chorus": 3.21, "Serf": None},
        "kill_percent": 20,
    }
    text = "\n".join(loss_section(result))
    assert "numgen random mod 100 < N counter drop" in text
    assert "--parts loss --loss-minutes 10" in text
    assert "## False deaths under packet loss (15 min, 10 nodes each" in text
    assert (
        "| 5 % loss, 5 min: live nodes reported dead | 0 (0 in the views' histories, 0 seen"
        " by 1 s polls) | 2 (2 EventMemberFailed logged, 0 seen by 1 s polls) |"
    ) in text
    assert "| 20 % loss, 5 min: live nodes reported dead | 3 (3 in the views' histories" in text
    assert "| 20 % loss one way, 5 min: suspicions | 9 in the histories" in text
    assert "then 20 % loss one way for 5 min, then 20 % loss for 5 min" in text
    assert "| 20 % loss, 5 min: suspicions | 40 in the histories, 0 seen by polls |" in text
    assert "| 20 % loss, 5 min: polls unanswered | 0 of 3000 | 0 of 3000 |" in text
    assert "| 5 % loss, 5 min: packets dropped (measured) | 5.0 % of 1000 |" in text
    assert "| 20 % loss, 5 min: live nodes reported left | 0 | 1 |" in text
    assert "sees it dead | 3.21 s | n/a |" in text
    assert "Never agreed before the loss began" in text and "Serf" in text


def test_report_includes_the_loss_section_when_measured() -> None:
    meta = bench_meta()
    loss = {"n": 10, "minutes": 1.0, "phases": [_phase(5, {}, {})], "kill": {}}
    text = render_markdown({"meta": meta, "runs": [], "loss": loss}, None)
    # The heading has the phases' length; --loss-minutes 1 made one phase of 5 here.
    assert "## False deaths under packet loss (5 min, 10 nodes each" in text


def test_section_says_why_the_soak_is_missing() -> None:
    text = loss_section({"n": 10, "minutes": 10.0, "error": "nft is missing"})
    assert text[2] == "Not measured: nft is missing"
