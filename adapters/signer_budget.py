"""How many messages a second each signer may have us accept and forward on the topic.

Members of our view have a bucket each (``signer_rate``) and one together
(``signer_global_rate``). Signers our view does not know yet are the question:

- **Open cluster** (no admission policy): identities are free to mint, and a bucket each
  would let one stranger with a thousand keys flood us, so all strangers share one small
  bucket (``stranger_rate``, burst ``stranger_burst``).
- **Certified cluster** (an admission policy): the validator checked a newcomer's
  certificate (or found it on the allow-list) before any budget (``adapters.gossip_inbound``;
  notices and leaves of non-members are refused there), so each newcomer has a bucket of
  its own, as a member, and newcomers share a pool of their own (``signer_global_rate``,
  burst ``newcomer_burst``: the join gate's, as many as the view may take at once). With
  the open cluster's bucket, a thousand nodes starting within seconds had most of their
  first digests turned away, and a digest refused by the validator is not forwarded
  either: the last newcomers waited for anti-entropy to be known (99 s after the last
  start in the simulator at 1,000 nodes, Session 19). A pool apart from the members'
  common bucket keeps a storm of newcomers, honest or not, from having members'
  suspicions and refutations refused (the attacker review of b621e79).

Used by the gossip service and by the simulator (``devnet.simulator.node``), so both decide
alike. Bounded: members' and newcomers' buckets are two LRUs of ``max_keys`` each.
"""

from __future__ import annotations

from adapters.gossip_tuning import GossipTuning
from probes.rate_limit import RateLimiter, TokenBucket

__all__ = ["SignerBudget"]


class SignerBudget:
    def __init__(
        self, tuning: GossipTuning, *, certified: bool, max_keys: int, newcomer_burst: float
    ) -> None:
        self.certified = certified

        def limiter(shared_burst: float) -> RateLimiter:
            return RateLimiter(
                rate=tuning.signer_global_rate,
                burst=shared_burst,
                per_key_rate=tuning.signer_rate,
                per_key_burst=tuning.signer_burst,
                max_keys=max_keys,
            )

        self._members = limiter(tuning.signer_global_burst)
        # Newcomers' buckets in an LRU of their own: however many come, they never push a
        # member's bucket out (it would come back with a full burst). A newcomer that
        # becomes a member starts a member's bucket, one burst more, once.
        self._newcomers = limiter(max(tuning.signer_global_burst, newcomer_burst))
        self._strangers = TokenBucket(tuning.stranger_rate, tuning.stranger_burst, 0.0)

    def allow(self, signer: str, *, member: bool, now: float) -> bool:
        """Whether a message ``signer`` signed may pass now (a token is taken if so);
        ``member``: the signer is in our view."""
        if member:
            return self._members.allow(signer, now)
        if self.certified:
            return self._newcomers.allow(signer, now)
        return self._strangers.take(now)
