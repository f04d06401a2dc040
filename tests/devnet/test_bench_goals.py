"""Issue 13's goals table (devnet/bench_goals.py), from plain results."""

from __future__ import annotations

from typing import Any

from devnet.bench_goals import goals_section
from devnet.bench_report import carry_over


def _runs(n: int, **metrics: tuple[list[float | None], list[float]]) -> list[dict[str, Any]]:
    """Three runs a side at ``n`` nodes: metric=(ours, Serf's), one value per run."""
    rows: list[dict[str, Any]] = []
    for side, index in (("chorus", 0), ("Serf", 1)):
        for k in range(3):
            values = {metric: pair[index][k] for metric, pair in metrics.items()}
            rows.append({"target": side, "n": n, "run": k + 1, **values})
    return rows


def _row(lines: list[str], start: str) -> list[str]:
    (line,) = [line for line in lines if line.startswith(start)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_goal_is_judged_and_a_miss_stays_marked() -> None:
    results: dict[str, Any] = {
        "runs": _runs(
            5,
            kill=([0.3, 0.4, 0.2], [6.0, 5.0, 7.0]),
            freeze=([6.0, 6.5, 7.0], [8.0, 8.0, 8.0]),
            leave=([0.1, 0.1, 0.1], [0.2, 0.2, 0.2]),
            converge=([0.3, 0.3, 0.3], [0.3, 0.3, 0.3]),
        )
        + _runs(
            20,
            kill=([0.5, 0.5, 0.5], [8.0, 8.0, 8.0]),
            freeze=([6.0, 6.0, 6.0], [8.0, 8.0, 8.0]),
            leave=([0.2, 0.2, 0.2], [0.5, 0.5, 0.5]),
            converge=([1.0, None, 1.0], [0.5, 0.5, 0.5]),
        ),
        "resources": {"sizes": {"10": {"chorus": {"rss_mib": 101.0, "bytes_per_second": 2900},
                                       "Serf": {"rss_mib": 15.0, "bytes_per_second": 270}}}},
        "soak": {"n": 10, "minutes": 10, "hogs": 2, "chorus": {"false_dead": 0},
                 "Serf": {"false_dead": 0}},
        "loss": {"n": 10, "kill": {"chorus": 4.0, "Serf": 5.0}, "phases": [
            {"percent": 20, "one_way": True, "minutes": 5, "chorus": {"dead": 0},
             "Serf": {"dead": 2}},
            {"percent": 20, "minutes": 5, "chorus": {"dead": 1, "history": {"dead": 3}},
             "Serf": {"dead": 0, "logged": {"failed": 0}}}]},
        "partition": {"n": 6, "groups": [[1, 2, 3], [4, 5, 6]], "runs": [
            {"chorus": {"heal": 2.0}, "Serf": {"heal": 20.0}},
            {"chorus": {"heal": 2.5}, "Serf": {"heal": 30.0}}]},
    }  # fmt: skip
    lines = goals_section(results)
    assert _row(lines, "| SIGKILL → dead at every other node | 5") == [
        "SIGKILL → dead at every other node", "5", "0.30 s", "6.00 s", "0.05x", "1 s", "yes"
    ]  # fmt: skip
    assert _row(lines, "| SIGSTOP → dead at every other node | 5")[-1] == "**no**"
    converge = [line for line in lines if line.startswith("| last node ready")]
    assert converge[0].endswith("| ≤ Serf | yes |")  # a tie is no slower
    assert converge[1].endswith("| ≤ Serf | **no** |")  # a failed run is a miss
    assert _row(lines, "| idle cost per node: memory")[-1] == "**no**"
    assert _row(lines, "| idle cost per node: traffic")[-1] == "yes"
    assert _row(lines, "| idle cost per node: CPU")[2:4] == ["n/a", "n/a"]  # not measured
    assert _row(lines, "| no live node reported dead, 10 min")[-1] == "yes"
    # The histories saw three false deaths where the polls saw one: the worse counts.
    assert _row(lines, "| no live node reported dead, 20 % loss,")[2:4] == ["3", "0"]
    assert _row(lines, "| no live node reported dead, 20 % loss one way,")[2:4] == ["0", "2"]
    assert _row(lines, "| partition into 3 and 3 healed")[2:] == [
        "2.25 s", "25.00 s", "0.09x", "3 s", "yes"
    ]  # fmt: skip


def test_parts_that_did_not_run_leave_no_rows() -> None:
    lines = goals_section({"runs": []})
    assert not any("loss" in line or "partition" in line or "hogs" in line for line in lines)


def test_a_new_report_keeps_the_sections_other_tools_measured() -> None:
    old = (
        "# Benchmarks\n\nold figures\n\n## Where an idle node's bytes go\n\n| a | b |\n\n"
        "## Method\n\nold method\n"
    )
    new = "# Benchmarks\n\nnew figures\n\n## Method\n\nnew method\n"
    text = carry_over(new, old)
    assert text == (
        "# Benchmarks\n\nnew figures\n\n## Where an idle node's bytes go\n\n| a | b |\n\n"
        "## Method\n\nnew method\n"
    )
    assert carry_over(text, old) == text  # kept once, not twice
    assert carry_over(new, "") == new


def test_parts_kept_from_an_earlier_run_say_their_commit() -> None:
    from devnet.bench_report import _carried_text
    from devnet.bench_results import part_commits

    earlier = {"commit": "492b670"}
    commits = part_commits(earlier, ["runs", "resources", "loss"], "abc1234")
    assert commits == {
        "runs": "abc1234",
        "resources": "abc1234",
        "soak": "492b670",
        "loss": "abc1234",
        "partition": "492b670",
    }
    text = " ".join(_carried_text({"commit": "abc1234", "part_commits": commits}))
    assert "partition at 492b670, soak at 492b670" in text
    again = part_commits({"commit": "abc1234", "part_commits": commits}, ["soak"], "def5678")
    assert again["partition"] == "492b670" and again["soak"] == "def5678"
    assert _carried_text({"commit": "x", "part_commits": dict.fromkeys(commits, "x")}) == []
