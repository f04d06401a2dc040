"""Lifeguard's suspicion timeout as memberlist computes it: pure arithmetic of the cluster's
size and a suspicion's confirmations. ``ClusterConfig.suspicion_timeout`` applies it with
the config's multipliers; the names are re-exported by ``mesh.cluster_config``."""

from __future__ import annotations

import math

__all__ = ["expected_confirmations", "suspicion_bounds", "suspicion_timeout"]


def suspicion_bounds(n: int, *, mult: int, max_mult: int, interval: float) -> tuple[float, float]:
    """Lifeguard's (Min, Max) suspicion timeouts in seconds for a cluster of ``n``.

    Min is memberlist's ``suspicionTimeout``: ``mult * max(1, log10(max(1, n))) * interval``
    (the log term is how many gossip rounds dissemination needs, SWIM section 4.1); Max is
    ``max_mult * Min``.
    """
    node_scale = max(1.0, math.log10(max(1, n)))
    low = mult * node_scale * interval
    return low, max_mult * low


def expected_confirmations(n: int, k: int) -> int:
    """K for a cluster of ``n``: memberlist sets it to 0 when ``n - 2 < k`` (not counting us
    and the suspect, too few members are left to confirm)."""
    return 0 if n - 2 < k else k


def suspicion_timeout(
    n: int,
    confirmations: int,
    *,
    mult: int,
    max_mult: int,
    interval: float,
    k: int,
    known: int | None = None,
) -> float:
    """Seconds a suspicion lasts after ``confirmations`` independent confirmations.

    Lifeguard (IV-B), as memberlist's ``remainingSuspicionTime``:
    ``max(Min, Max - (Max - Min) * log(C + 1) / log(K + 1))``, starting at Max with no
    confirmation and reaching Min at K. With K = 0 it is Min from the start.

    ``known`` (default ``n``) is how many live members we know of from any source, a
    pulled view included: K is 0 only when too few of them are left to confirm. ``n``
    (rule 2: members heard on the topic) still sets Min and Max. A joiner that learned
    the cluster from one pull counts almost nobody in ``n`` for its first seconds, while
    its own start makes its pings late; with K from ``n`` its lone failed ping made a
    live member dead in its view after Min (a 20-node bench run, 2026-12-04). Minted
    members listed in a pull can only raise K to its configured value, as any cluster of
    four members does.
    """
    low, high = suspicion_bounds(n, mult=mult, max_mult=max_mult, interval=interval)
    wanted = expected_confirmations(n if known is None else max(n, known), k)
    if wanted <= 0:
        return low
    fraction = math.log(max(0, confirmations) + 1.0) / math.log(wanted + 1.0)
    return max(low, high - fraction * (high - low))
