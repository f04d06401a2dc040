"""Which members GET /health/cluster shows (``mesh.cluster_page``): pure selection."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mesh.cluster_page import EVERY, MAX_LIMIT, ClusterPage, parse_page
from mesh.messages import MemberState

ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


@dataclass(frozen=True)
class Row:
    name: str
    state: MemberState


def members(*rows: tuple[str, MemberState]) -> dict[str, Row]:
    return {name: Row(name, state) for name, state in rows}


VIEW = members(("d", DEAD), ("a", ALIVE), ("c", SUSPECT), ("b", ALIVE), ("e", LEFT))


def names(rows: list[Row]) -> list[str]:
    return [row.name for row in rows]


def test_every_member_in_peer_id_order_by_default() -> None:
    assert EVERY.select(VIEW) == (sorted(VIEW.values(), key=lambda r: r.name), 5, None)


def test_a_filter_keeps_the_states_asked_for() -> None:
    shown, total, following = ClusterPage(frozenset({DEAD, SUSPECT})).select(VIEW)
    assert (names(shown), total, following) == (["c", "d"], 2, None)


def test_pages_cover_every_match_once_and_the_last_says_so() -> None:
    seen: list[str] = []
    after = None
    for _ in range(10):
        shown, total, after = ClusterPage(limit=2, after=after).select(VIEW)
        assert total == 5
        seen += names(shown)
        if after is None:
            break
    assert seen == ["a", "b", "c", "d", "e"]


def test_a_member_joining_between_pages_shifts_no_other() -> None:
    # A cursor, not an offset: "aa" sorts before the cursor and is not shown twice over.
    first, _, after = ClusterPage(limit=2).select(VIEW)
    grown = {**VIEW, **members(("aa", ALIVE))}
    second, total, _ = ClusterPage(limit=2, after=after).select(grown)
    assert (names(first), names(second), total) == (["a", "b"], ["c", "d"], 6)


def test_a_cursor_need_not_be_a_member() -> None:
    shown, _, following = ClusterPage(after="bz", limit=1).select(VIEW)
    assert (names(shown), following) == (["c"], "c")
    assert ClusterPage(after="z").select(VIEW) == ([], 5, None)


def test_parse_reads_each_parameter() -> None:
    assert parse_page(None, None, None) == EVERY
    assert parse_page("dead,left", "12D3KooWabc", str(MAX_LIMIT)) == ClusterPage(
        frozenset({DEAD, LEFT}), "12D3KooWabc", MAX_LIMIT
    )


@pytest.mark.parametrize(
    ("state", "after", "limit", "named"),
    [
        ("", None, None, "state"),
        ("alive,,dead", None, None, "state"),
        ("ALIVE", None, None, "state"),
        ("alive," * 20 + "dead", None, None, "state"),
        (None, "", None, "after"),
        (None, "a/b", None, "after"),
        (None, "x" * 129, None, "after"),
        (None, None, "0", "limit"),
        (None, None, str(MAX_LIMIT + 1), "limit"),
        (None, None, "-1", "limit"),
        (None, None, "\u00b2", "limit"),
        (None, None, "1" * 5000, "limit"),
    ],
)
def test_parse_refuses_a_bad_value_naming_it(
    state: str | None, after: str | None, limit: str | None, named: str
) -> None:
    with pytest.raises(ValueError, match=f"^{named} "):
        parse_page(state, after, limit)
