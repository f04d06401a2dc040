"""The ping wheel: a rotation per tick that forms a Latin square over a shared member set."""

from __future__ import annotations

import pytest

from adapters.ping_schedule import rotation, tick_at


def test_the_rotation_starts_at_the_tick_plus_our_rank_and_skips_us() -> None:
    peers = ["b", "d", "a"]
    assert rotation(0, "c", peers) == ["d", "a", "b"]  # c is rank 2 of a, b, c, d
    assert rotation(1, "c", peers) == ["a", "b", "d"]
    assert rotation(0, "a", ["a", "b"]) == ["b"]  # ourselves in the list is ignored
    assert rotation(7, "a", []) == []


@pytest.mark.parametrize("n", [2, 3, 5, 20])
def test_every_member_is_pinged_by_exactly_one_other_at_every_tick(n: int) -> None:
    members = [f"m{i:02}" for i in range(n)]
    for tick in range(-3, 2 * n):
        turns = [rotation(tick, me, members)[0] for me in members]
        assert sorted(turns) == members
        assert all(turn != me for turn, me in zip(turns, members, strict=True))


def test_ticks_are_whole_intervals_of_the_wall_clock() -> None:
    assert tick_at(1_000.74, 0.5) == 2_001
    assert tick_at(0.0, 0.5) == 0
    assert tick_at(-0.1, 0.5) == -1
