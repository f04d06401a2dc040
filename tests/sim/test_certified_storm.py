"""A storm of newcomers under an admission policy: every certified one is let in at once.

In an open cluster, signers a view does not know share one small budget
(``GossipTuning.stranger_rate``): identities are free to mint. Where an admission policy
certifies every member, the validator has checked a newcomer's certificate before any
budget, so a newcomer is as accountable as a member and is limited as one (its own bucket
and the members' common one). A thousand nodes starting within seconds used to have most
of their first digests turned away and dropped unforwarded, and waited for anti-entropy to
be known (99 s in the simulator, Session 19). Identities the authority did not certify are
still refused before any budget (tests/sim/test_hostile_view.py, section 8).
"""

from __future__ import annotations

import dataclasses

import pytest
import trio

from adapters.gossip_tuning import GossipTuning
from devnet import forge
from devnet.testing import ALIVE

pytestmark = pytest.mark.network

REJECTED = "chorus_gossip_rejected_total"
TUNING = GossipTuning()
# Newcomers, sent at 50 a second: three times what the strangers' budget lets through in
# those seconds (its burst plus its rate), within the members' common budget.
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
