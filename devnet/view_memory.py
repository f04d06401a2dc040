"""What a node's cluster view weighs in memory at scale, and what that makes of a simulation.

The view is the real ``ClusterView`` filled as ``devnet.cluster_json_cost`` fills it
(members shaped as the devnet's), each member with a signed statement of the size a real
one has (the digest's encoding in a GossipSub envelope: sender, sequence number, topic,
Ed25519 signature and key), as a node keeps it to pass on in its snapshots. Measured with
``tracemalloc``: Python objects only, so a floor for what the process's RSS grows by.

The last column is the arithmetic that keeps 10,000 nodes out of the simulator: it runs
one such view per simulated node.

    python -m devnet.view_memory --sizes 10,100,1000,10000
"""

from __future__ import annotations

import argparse
import gc
import os
import tracemalloc
from collections.abc import Sequence

from libp2p.pubsub.pb import rpc_pb2

from devnet.cluster_json_cost import filled_view
from mesh.cluster_view import ClusterView
from mesh.digest import TOPIC, encode_gossip

__all__ = ["envelope_overhead", "main", "view_bytes"]

# py-libp2p's GossipSub message around our data: a 38-byte Ed25519 peer id, an 8-byte
# sequence number, the topic, a 64-byte signature and the 36-byte public key.
_SENDER, _SEQNO, _SIGNATURE, _KEY = 38, 8, 64, 36


def envelope_overhead() -> int:
    """Bytes a GossipSub envelope adds to a statement's data."""
    message = rpc_pb2.Message(
        from_id=bytes(_SENDER),
        data=b"",
        seqno=bytes(_SEQNO),
        topicIDs=[TOPIC],
        signature=bytes(_SIGNATURE),
        key=bytes(_KEY),
    )
    return len(message.SerializeToString())


def with_statements(view: ClusterView) -> None:
    """Give every member a statement of a real one's size (unique bytes, as on a node)."""
    overhead = envelope_overhead()
    for record in view._roster.records.values():
        record.statement = os.urandom(len(encode_gossip(record.digest)) + overhead)


def view_bytes(n: int, *, statements: bool = True) -> int:
    """Bytes of Python objects a view of ``n`` members holds (tracemalloc); without
    ``statements``, as a view that never kept them."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        view = filled_view(n)
        if statements:
            with_statements(view)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del view
    return held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.view_memory",
        description="Memory of one node's cluster view at scale (tracemalloc), per member,"
        " and for a simulation that runs one view per node.",
    )
    parser.add_argument(
        "--sizes", default="10,100,1000,10000", help="members (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if any(n < 1 for n in sizes):
        parser.error("--sizes must be positive")
    print("| members | view | per member | n such views (a simulation of n nodes) |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        held = view_bytes(n)
        print(
            f"| {n:,} | {held / 2**20:,.2f} MiB | {held / n:,.0f} B | {held * n / 2**30:,.1f} GiB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
