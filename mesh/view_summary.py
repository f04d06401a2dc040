"""A view in 512 bytes, for anti-entropy: which parts of two views differ.

Gossip can lose a statement for good: a digest turned away by a budget in a join storm is
not forwarded, and in a large cluster the next refresh may be hours away
(``ClusterConfig.refresh_interval``). memberlist repairs this with a periodic push/pull of
the whole state with one random member; a whole view of 1,000 signed members is some
200 KB, so here the puller first says what it holds: the live members (alive and suspect)
fall into ``BUCKETS`` buckets by a hash of their peer id, and each bucket is summed up by
a hash of its members' ids and versions. The responder answers with the members of the
buckets whose sums differ from its own (``Snapshots.build``'s ``buckets``), all of them
signed statements as in any pull. Two views that agree cost 512 bytes and an empty answer;
one member's news costs its bucket, a few members at any size up to 10,000.

Dead and left members are left out of the sums: views forget them at different times, and
a snapshot never brings them back (rule 12), so they would keep two agreeing views apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mesh.messages import MemberState, Version

__all__ = ["BUCKETS", "SUMMARY_BYTES", "bucket_of", "differing", "summarise"]

BUCKETS = 64
_SUM_BYTES = 8
SUMMARY_BYTES = BUCKETS * _SUM_BYTES
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


def bucket_of(peer: str) -> int:
    return hashlib.blake2b(peer.encode(), digest_size=2).digest()[0] % BUCKETS


def summarise(members: Iterable[tuple[str, Version, MemberState]]) -> bytes:
    """The summary of a view given as (peer id, version, state) of each member."""
    rows: list[list[bytes]] = [[] for _ in range(BUCKETS)]
    for peer, key, state in members:
        if state in _LIVE:
            line = f"{peer} {key.start_time_ms} {key.incarnation} {key.seq}\n"
            rows[bucket_of(peer)].append(line.encode())
    sums = bytearray()
    for row in rows:
        sums += hashlib.blake2b(b"".join(sorted(row)), digest_size=_SUM_BYTES).digest()
    return bytes(sums)


def differing(mine: bytes, theirs: bytes) -> frozenset[int]:
    """The buckets whose sums differ; every bucket if ``theirs`` is not a summary."""
    if len(mine) != SUMMARY_BYTES or len(theirs) != SUMMARY_BYTES:
        return frozenset(range(BUCKETS))
    return frozenset(
        b
        for b in range(BUCKETS)
        if mine[b * _SUM_BYTES : (b + 1) * _SUM_BYTES]
        != theirs[b * _SUM_BYTES : (b + 1) * _SUM_BYTES]
    )
