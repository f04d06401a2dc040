"""The signer budget: strangers share one bucket in an open cluster; where every member is
certified, each newcomer has a bucket of its own and newcomers share a pool apart from the
members' common bucket."""

from __future__ import annotations

from adapters.gossip_tuning import GossipTuning
from adapters.signer_budget import SignerBudget

TUNING = GossipTuning(stranger_rate=1.0, stranger_burst=2.0)
PER_SIGNER = int(TUNING.signer_burst)


def _budget(tuning: GossipTuning = TUNING, *, certified: bool, pool: float = 64) -> SignerBudget:
    return SignerBudget(tuning, certified=certified, max_keys=256, newcomer_burst=pool)


def _passed(budget: SignerBudget, signers: list[str], *, member: bool) -> int:
    return sum(budget.allow(s, member=member, now=0.0) for s in signers)


def test_open_cluster_strangers_share_one_bucket_whatever_their_keys() -> None:
    budget = _budget(certified=False)
    assert _passed(budget, [f"minted-{i}" for i in range(10)], member=False) == 2
    # Members are not held by the strangers' bucket.
    assert _passed(budget, ["member"] * 50, member=True) == PER_SIGNER


def test_certified_newcomers_have_a_bucket_each_as_members_do() -> None:
    budget = _budget(certified=True)
    assert _passed(budget, [f"newcomer-{i}" for i in range(10)], member=False) == 10
    # ...and each its own limit, as a member.
    assert _passed(budget, ["newcomer-0"] * 50, member=False) == PER_SIGNER - 1


def test_a_storm_of_newcomers_is_held_by_their_pool_not_the_members_bucket() -> None:
    tuning = GossipTuning(signer_global_burst=4.0)
    budget = _budget(tuning, certified=True, pool=30)
    assert _passed(budget, [f"newcomer-{i}" for i in range(100)], member=False) == 30
    # The members' common bucket is whole: their suspicions and refutations still pass.
    assert _passed(budget, [f"member-{i}" for i in range(10)], member=True) == 4


def test_newcomers_never_push_a_members_bucket_out() -> None:
    # A member that spent its burst stays held, however many newcomers come after it: if
    # their buckets could evict its own, it would come back with a full burst.
    budget = SignerBudget(TUNING, certified=True, max_keys=8, newcomer_burst=64)
    assert _passed(budget, ["member"] * 50, member=True) == PER_SIGNER
    assert _passed(budget, [f"newcomer-{i}" for i in range(40)], member=False) == 40
    assert not budget.allow("member", member=True, now=0.0)
