"""The partition part's pure pieces (devnet/bench_partition.py): the halves, the "split
seen" condition, and the report section, with plain values."""

from __future__ import annotations

from typing import Any

import pytest

from devnet.bench_partition import halves, partition_section, split_seen
from devnet.bench_report import render_markdown
from tests.devnet import bench_meta


def test_halves_cut_the_nodes_in_two() -> None:
    assert halves(6) == [[1, 2, 3], [4, 5, 6]]
    assert halves(5) == [[1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="at least 2"):
        halves(1)


def test_split_is_seen_only_once_every_node_lists_the_other_half_dead() -> None:
    groups = [[1, 2], [3, 4]]
    seen = split_seen(groups)
    whole = {
        1: {1: "alive", 2: "alive", 3: "dead", 4: "dead"},
        2: {1: "alive", 2: "alive", 3: "dead", 4: "dead"},
        3: {1: "dead", 2: "dead", 3: "alive", 4: "alive"},
        4: {1: "dead", 2: "dead", 3: "alive", 4: "alive"},
    }
    assert seen(whole)
    suspect = {**whole, 4: {**whole[4], 2: "suspect"}}
    assert not seen(suspect)
    # A node that does not answer has not seen anything.
    assert not seen({k: v for k, v in whole.items() if k != 3})
    # Its own half dead is no partition seen: only the other half counts, all of it.
    assert not seen({**whole, 1: {1: "alive", 2: "dead", 3: "dead"}})


def _result(chorus: list[tuple[float | None, float | None]], serf: list[Any]) -> dict[str, Any]:
    runs = [
        {
            "run": k + 1,
            "chorus": {"split": c[0], "heal": c[1]},
            "Serf": {"split": s[0], "heal": s[1]},
        }
        for k, (c, s) in enumerate(zip(chorus, serf, strict=True))
    ]
    return {"n": 6, "groups": [[1, 2, 3], [4, 5, 6]], "runs": runs}


def test_section_gives_medians_with_every_run_and_the_goal() -> None:
    text = "\n".join(
        partition_section(
            _result([(6.0, 1.0), (7.0, 3.0), (6.5, 2.0)], [(5.0, 20.0), (5.5, 25.0), (6.0, 30.0)])
        )
    )
    assert "3 | 3" in text and "Medians of 3 runs" in text
    assert (
        "| heal → every view lists all 6 alive | 2.00 s (1.00 s, 3.00 s, 2.00 s)"
        " | 25.00 s (20.00 s, 25.00 s, 30.00 s) | ≤ 3 s |" in text
    )
    assert "| cut → every node lists the other half dead | 6.50 s (6.00 s, 7.00 s, 6.50 s)" in text


def test_a_run_that_timed_out_is_a_miss_not_averaged_away() -> None:
    text = "\n".join(partition_section(_result([(6.0, 1.0), (6.0, None)], [(5.0, 2.0)] * 2)))
    assert "| > 120 s (1.00 s, > 120 s) |" in text


def test_report_includes_the_partition_section_and_says_why_it_is_missing() -> None:
    meta = bench_meta()
    partition = {"n": 6, "error": "no ip"}
    text = render_markdown({"meta": meta, "runs": [], "partition": partition}, None)
    assert "## Partition and heal" in text and "Not measured: no ip" in text
