"""How many messages a second each signer may have us accept and forward on the topic.

Members of our view have a bucket each (``signer_rate``) and one together
(``signer_global_rate``). Signers our view does not know yet are the question:

- **Open cluster** (no admission policy): identities are free to mint, and a bucket each
  would let one stranger with a thousand keys flood us, so all strangers share one small
  bucket (``stranger_rate``, burst ``stranger_burst``).
- **Certified cluster**: the validator checked a newcomer's certificate before any budget
  (``adapters.gossip_inbound``), so it is as accountable as a member and is limited as one.
  Notices and leaves of non-members never get here there (refused as not admitted). With
  the shared bucket, a thousand nodes starting within seconds had most of their first
  digests turned away, and a digest refused by the validator is not forwarded either: the
  last newcomers waited for anti-entropy to be known (99 s after the last start in the
  simulator at 1,000 nodes, Session 19).

Used by the gossip service and by the simulator (``devnet.simulator.node``), so both decide
alike. Bounded: the per-signer buckets are an LRU of ``max_keys``.
"""

from __future__ import annotations

from adapters.gossip_tuning import GossipTuning
from probes.rate_limit import RateLimiter, TokenBucket

__all__ = ["SignerBudget"]


class SignerBudget:
    def __init__(self, tuning: GossipTuning, *, certified: bool, max_keys: int) -> None:
        self.certified = certified
        self._signers = RateLimiter(
            rate=tuning.signer_global_rate,
            burst=tuning.signer_global_burst,
            per_key_rate=tuning.signer_rate,
            per_key_burst=tuning.signer_burst,
            max_keys=max_keys,
        )
        self._strangers = TokenBucket(tuning.stranger_rate, tuning.stranger_burst, 0.0)

    def allow(self, signer: str, *, member: bool, now: float) -> bool:
        """Whether a message ``signer`` signed may pass now (a token is taken if so);
        ``member``: the signer is in our view."""
        if not member and not self.certified:
            return self._strangers.take(now)
        return self._signers.allow(signer, now)
