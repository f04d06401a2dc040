"""The digest's well-known component names, sent as indexes instead of strings.

A healthy node's digest carried about 200 bytes of component names and scores, half of
what it signs; refreshes of it were the largest share of an idle node's gossip bytes
(devnet/cost_breakdown.py). The components every node reports (``mesh.score``'s weighted
components and the built-in checks' own, ``adapters.node_checks``) are numbered here:
``HealthDigest.whole_components`` is a bit per entry at score 1.0 and
``indexed_components`` maps an entry's index to any other score. Names outside the table
(an application's own checks) keep their strings.

The table only ever grows at its end: an index means the same name to every version, and
an older node ignores the indexes it does not know (it sees fewer components, never wrong
ones).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TABLE", "TABLE_BITS", "index_of", "join", "split"]

TABLE: tuple[str, ...] = (
    "p2p",
    "pubsub",
    "dht",
    "replication",
    "tasks",
    "resources",
    "election",
    "disk-space",
    "memory",
    "event-loop-lag",
    "database",
)
# whole_components is a uint32.
TABLE_BITS = 32
assert len(TABLE) <= TABLE_BITS and len(set(TABLE)) == len(TABLE)

_INDEX = {name: i for i, name in enumerate(TABLE)}


def index_of(name: str) -> int | None:
    return _INDEX.get(name)


def split(components: Mapping[str, float]) -> tuple[int, dict[int, float], dict[str, float]]:
    """``components`` as (whole bits, indexed scores, named scores): lossless."""
    whole = 0
    indexed: dict[int, float] = {}
    named: dict[str, float] = {}
    for name, score in components.items():
        index = _INDEX.get(name)
        if index is None:
            named[name] = score
        elif score == 1.0:
            whole |= 1 << index
        else:
            indexed[index] = score
    return whole, indexed, named


def join(
    whole: int, indexed: Mapping[int, float], named: Mapping[str, float]
) -> dict[str, float] | str:
    """The components again, or why they cannot be (a name given twice). Indexes beyond
    this version's table are left out: a newer peer's components we have no name for."""
    out = dict(named)
    for index, name in enumerate(TABLE):
        if whole >> index & 1:
            if name in out:
                return f"component {name!r} twice"
            out[name] = 1.0
    for index, score in indexed.items():
        if 0 <= index < len(TABLE):
            name = TABLE[index]
            if name in out:
                return f"component {name!r} twice"
            out[name] = score
    return dict(sorted(out.items()))
