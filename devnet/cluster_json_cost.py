"""What GET /health/cluster costs a node at scale: body size and build time, whole and paged.

The view is the real ``ClusterView`` filled with members shaped as the devnet's (a peer id,
an HTTP address, one TCP address, the reference's components); the body is the real
``mesh.cluster_json`` serialised as quart does (``json.dumps``). Pure CPU: no node runs.

    python -m devnet.cluster_json_cost --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from mesh.cluster_config import ClusterConfig
from mesh.cluster_json import cluster_json
from mesh.cluster_page import EVERY, ClusterPage
from mesh.cluster_view import ClusterView
from mesh.messages import HealthDigest, MemberState

__all__ = ["main", "measure"]

START_MS = 1_700_000_000_000
COMPONENTS = {"p2p": 1.0, "dht": 0.98, "pubsub": 1.0, "resources": 0.93, "tasks": 1.0}
PAGES: dict[str, ClusterPage] = {
    "whole view": EVERY,
    "?limit=100": ClusterPage(limit=100),
    "?state=dead,suspect": ClusterPage(frozenset({MemberState.DEAD, MemberState.SUSPECT})),
}


def peer_id(i: int) -> str:
    return f"12D3KooW{i:044d}"


def filled_view(n: int) -> ClusterView:
    # max_members is the view's bound; this measures the body, so the bound is lifted.
    view = ClusterView(peer_id(0), ClusterConfig(max_members=n + 1, join_burst=n + 1))
    for i in range(n):
        ip = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        digest = HealthDigest(
            node_id=peer_id(i),
            start_time_ms=START_MS + i,
            seq=1,
            sent_at_ms=START_MS + 1_000,
            components=COMPONENTS,
            version="v0.1.0",
            http_addr=f"http://{ip}:8080",
            p2p_addrs=(f"/ip4/{ip}/tcp/4001/p2p/{peer_id(i)}",),
        )
        view.on_gossip(digest, 1.0)
    return view


def measure(n: int, page: ClusterPage, repeats: int = 3) -> tuple[int, float]:
    """Bytes of the body and the best of ``repeats`` build-and-serialise times, seconds."""
    view = filled_view(n)
    best = float("inf")
    size = 0
    for _ in range(repeats):
        began = time.perf_counter()
        body = json.dumps(cluster_json(view, now=2.0, wall_now=1_700_000_002.0, page=page))
        best = min(best, time.perf_counter() - began)
        size = len(body.encode())
    return size, best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.cluster_json_cost",
        description="Size and build time of GET /health/cluster at scale, whole and paged.",
    )
    parser.add_argument("--sizes", default="1000,10000", help="members (default: 1000,10000)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    print("| members | body | bytes | build + serialise |")
    print("|---:|---|---:|---:|")
    for n in sizes:
        for name, page in PAGES.items():
            size, seconds = measure(n, page)
            print(f"| {n:,} | {name} | {size:,} | {seconds * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
