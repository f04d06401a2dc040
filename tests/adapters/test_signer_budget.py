"""The signer budget: strangers share one bucket in an open cluster, and are counted as
members where every member is certified."""

from __future__ import annotations

from adapters.gossip_tuning import GossipTuning
from adapters.signer_budget import SignerBudget

TUNING = GossipTuning(stranger_rate=1.0, stranger_burst=2.0)
PER_SIGNER = int(TUNING.signer_burst)


def _passed(budget: SignerBudget, signers: list[str], *, member: bool) -> int:
    return sum(budget.allow(s, member=member, now=0.0) for s in signers)


def test_open_cluster_strangers_share_one_bucket_whatever_their_keys() -> None:
    budget = SignerBudget(TUNING, certified=False, max_keys=64)
    assert _passed(budget, [f"minted-{i}" for i in range(10)], member=False) == 2
    # Members are not held by the strangers' bucket.
    assert _passed(budget, ["member"] * 50, member=True) == PER_SIGNER


def test_certified_newcomers_have_a_bucket_each_as_members_do() -> None:
    budget = SignerBudget(TUNING, certified=True, max_keys=64)
    assert _passed(budget, [f"newcomer-{i}" for i in range(10)], member=False) == 10
    # ...and each its own limit, as a member.
    assert _passed(budget, ["newcomer-0"] * 50, member=False) == PER_SIGNER - 1


def test_certified_newcomers_still_share_the_members_common_bucket() -> None:
    tuning = GossipTuning(signer_global_burst=4.0)
    budget = SignerBudget(tuning, certified=True, max_keys=64)
    assert _passed(budget, [f"newcomer-{i}" for i in range(10)], member=False) == 4
