"""What one node's core costs per message at n members, on this host (not reproducible:
wall-clock time). ``python -m devnet.simulator.costs --members 1000``

Measured on a view warmed as the simulator warms it (``scenarios.warm_start``), with the
production preset: the signature check of one envelope (``EnvelopeCache._verify``: py-libp2p's
``signature_validator``), ``decode_gossip``, ``ClusterView.on_digest``, ``tick``,
``next_deadline``, the election (``elect_admin(view.candidates())``), and a snapshot's
encoding (``view.snapshot`` + ``encode_snapshot``: its size, and whether it was cut) and
decoding with verification (``decode_snapshot``, fresh verifier).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from adapters.envelope import EnvelopeCache
from devnet.simulator.scenarios import Settings, build, warm_start
from mesh.digest import decode_gossip, encode_gossip
from mesh.election import elect_admin
from mesh.snapshot_codec import decode_snapshot, encode_snapshot

__all__ = ["measure"]


def _time(action: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat


def measure(members: int, seed: int = 1) -> dict[str, float]:
    cluster = build(Settings(nodes=members, seed=seed))
    warm_start(cluster, links=4)
    node = cluster.nodes[0]
    other = cluster.nodes[1]
    view = node.view
    digest = other.publisher.next_digest()
    data = encode_gossip(digest)
    raw = other.ident.seal(data)
    now = 1.0
    out: dict[str, float] = {}
    out["verify_us"] = 1e6 * _time(lambda: EnvelopeCache(size=1).open(raw), 200)
    out["decode_gossip_us"] = 1e6 * _time(
        lambda: decode_gossip(data, other.peer_id, node.wall), 500
    )
    snapshot = encode_snapshot(view.snapshot(node.wall))
    out["snapshot_KiB"] = len(snapshot) / 1024
    out["snapshot_encode_ms"] = 1e3 * _time(lambda: encode_snapshot(view.snapshot(node.wall)), 3)
    decoded = decode_snapshot(snapshot, node.peer_id, node.wall, verify=EnvelopeCache().open)
    out["snapshot_members"] = float(len(getattr(decoded, "members", ())))
    out["snapshot_truncated"] = float(bool(getattr(decoded, "truncated", False)))
    out["snapshot_decode_ms"] = 1e3 * _time(
        lambda: decode_snapshot(snapshot, node.peer_id, node.wall, verify=EnvelopeCache().open), 1
    )
    seq = iter(range(10**9))

    def accept() -> None:
        fresh = other.publisher.next_digest()
        view.on_digest(fresh, now + next(seq) * 1e-6)

    out["on_digest_us"] = 1e6 * _time(accept, 500)
    out["tick_ms"] = 1e3 * _time(lambda: view.tick(now), 20)
    out["next_deadline_ms"] = 1e3 * _time(view.next_deadline, 20)
    out["election_ms"] = 1e3 * _time(lambda: elect_admin(view.candidates()), 5)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.simulator.costs")
    parser.add_argument("--members", type=lambda t: [int(x) for x in t.split(",")], default=[1000])
    args = parser.parse_args()
    for members in args.members:
        figures = measure(members)
        print(f"{members} members: " + ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
