"""Certified members on real nodes: a storm of newcomers is let in at once, and a member
whose certificate expired no longer counts as an observer.

In an open cluster, signers a view does not know share one small budget
(``GossipTuning.stranger_rate``): identities are free to mint. Where an admission policy
certifies every member, the validator has checked a newcomer's certificate before any
budget, so a newcomer is as accountable as a member and is limited as one
(``adapters/signer_budget.py``). A thousand nodes starting within seconds used to have most
of their first digests turned away and dropped unforwarded, and waited for anti-entropy to
be known (99 s in the simulator, Session 19). Identities the authority did not certify are
still refused before any budget (tests/sim/test_hostile_view.py, section 8).

A member's notices and leaves carry no certificate: they count because their author is a
member, and that lasts only as long as the certificate of its last digest. Until
b621e79's review, a member whose certificate had expired (the authority's way to retire a
node) could keep suspecting others, and its refused-dial notices confirming deaths, until
its silence made it dead.
"""

from __future__ import annotations

import dataclasses

import pytest
import trio

from adapters.gossip_tuning import GossipTuning
from devnet import forge
from devnet.testing import ALIVE, SimNode
from mesh.cluster_roster import Member

pytestmark = pytest.mark.network

REJECTED = "chorus_gossip_rejected_total"
TUNING = GossipTuning()
# Newcomers, sent at 50 a second: half as many again as the strangers' budget lets
# through in those seconds (its burst plus its rate).
NEWCOMERS = 150
PER_SECOND = 50


async def test_certified_newcomers_beyond_the_strangers_budget_all_join(mesh_network) -> None:
    net = await mesh_network(3, admission=True)
    victim = net.nodes[0]
    assert net.authority is not None
    start = forge.now_ms() - 1000
    newcomers = forge.mint_many(NEWCOMERS)
    messages = [
        forge.sign(
            i,
            forge.raw_gossip(
                dataclasses.replace(
                    forge.digest_of(i, start_time_ms=start),
                    certificate=net.authority.certify(i.peer_id),
                )
            ),
        )
        for i in newcomers
    ]
    strangers_budget = TUNING.stranger_burst + TUNING.stranger_rate * NEWCOMERS / PER_SECOND
    assert NEWCOMERS > 1.4 * strangers_budget  # the test means nothing otherwise
    flooded = await net.metric(victim, REJECTED, reason="flooded")
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        began = trio.current_time()
        step = 10
        for i, first in enumerate(range(0, NEWCOMERS, step)):
            await trio.sleep_until(began + i * step / PER_SECOND)
            await rogue.inject(victim, *messages[first : first + step])
        ids = {i.peer_id for i in newcomers}
        await net.until(
            lambda snap: all(snap[victim.name].state_of(p) == ALIVE for p in ids),
            what=f"{NEWCOMERS} certified newcomers alive in {victim.name}'s view",
            timeout=15 * net.scale,
        )
    assert await net.metric(victim, REJECTED, reason="flooded") == flooded


def _member(observer: SimNode, peer: str) -> Member:
    assert observer.handle is not None
    member = observer.handle.gossip.view.member(peer)
    assert member is not None, f"{observer.name} does not hold {peer}"
    return member


async def test_a_member_whose_certificate_expired_suspects_nobody(mesh_network) -> None:
    net = await mesh_network(3, admission=True)
    victim, target = net.nodes[0], net.nodes[1]
    assert net.authority is not None
    retiring = forge.mint()
    lifetime = 3.0
    digest = dataclasses.replace(
        forge.digest_of(retiring, start_time_ms=forge.now_ms() - 1000),
        certificate=net.authority.certify(retiring.peer_id, valid=lifetime),
    )
    issued = trio.current_time()
    not_admitted = await net.metric(victim, REJECTED, reason="not_admitted")
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        await rogue.inject(victim, forge.sign(retiring, forge.raw_gossip(digest)))
        await net.until(
            lambda snap: snap[victim.name].state_of(retiring.peer_id) == ALIVE,
            what="the retiring member alive in the victim's view",
        )
        # Still a member (its silence takes far longer to tell), but no longer certified.
        await trio.sleep_until(issued + lifetime + 0.5)
        assert victim.handle is not None
        assert victim.handle.gossip.view.knows(retiring.peer_id)
        notice = forge.notice_by(retiring, target.peer_id, _member(victim, target.peer_id).key)
        await rogue.inject(victim, forge.sign(retiring, forge.raw_gossip(notice)))
        with trio.fail_after(10 * net.scale):
            while await net.metric(victim, REJECTED, reason="not_admitted") == not_admitted:  # noqa: ASYNC110
                await trio.sleep(0.1)
    # Accepted, the notice would have made the target suspect with it as an observer.
    assert retiring.peer_id not in _member(victim, target.peer_id).suspected_by
