"""What the signatures of issue 12 cost: ``python -m devnet.bench_admission``.

Times, on this machine, the checks a node now makes that it did not before: the admission
policy's verdict on a digest's certificate (a cached dictionary lookup after the first
Ed25519 check per certificate), the verification of a carried GossipSub envelope (once per
envelope, then cached), and a whole pulled view of ``--members`` members decoded and
verified cold and warm. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

from adapters.envelope import EnvelopeCache
from devnet import forge
from mesh.admission import AdmissionPolicy, AdmissionReason
from mesh.certificate import MemberCertificate, authority_public_key, sign_certificate
from mesh.digest import encode_gossip
from mesh.messages import HealthDigest, MemberEntry, MemberState, ViewSnapshot
from mesh.model import Status
from mesh.snapshot_codec import decode_snapshot, encode_snapshot


def _check_fresh(
    policy: AdmissionPolicy, ids: list[str], certs: list[MemberCertificate], i: int, now: float
) -> None:
    # A policy of its own: nothing cached, so the certificate's signature is verified.
    verdict = AdmissionPolicy(authority_keys=policy.authority_keys).check(ids[i], certs[i], now)
    assert verdict is AdmissionReason.ADMITTED, verdict


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` calls, in 5 batches."""
    batches = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(repeat):
            fn()
        batches.append((time.perf_counter() - began) / repeat)
    return statistics.median(batches)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.bench_admission", description=__doc__)
    parser.add_argument("--members", type=int, default=200, help="members in the pulled view")
    args = parser.parse_args(argv)
    now = time.time()
    seed = os.urandom(32)
    policy = AdmissionPolicy(authority_keys=(authority_public_key(seed),))
    identities = forge.mint_many(args.members)
    ids = [identity.peer_id for identity in identities]
    certs = [sign_certificate(seed, peer, int((now + 3600) * 1000)) for peer in ids]
    entries = []
    for identity, peer, cert in zip(identities, ids, certs, strict=True):
        digest = HealthDigest(
            node_id=peer,
            start_time_ms=int(now * 1000) - 1000,
            seq=1,
            status=Status.HEALTHY,
            components={"p2p": 1.0},
            sent_at_ms=int(now * 1000),
            http_addr="127.0.0.1:8081",
            p2p_addrs=("/ip4/127.0.0.1/tcp/9000",),
            certificate=cert,
        )
        statement = forge.statement(forge.sign(identity, encode_gossip(digest)))
        entries.append(MemberEntry(digest, MemberState.ALIVE, statement=statement))
    data = encode_snapshot(ViewSnapshot(ids[0], int(now * 1000), tuple(entries)))

    fresh = iter(range(10**9))
    rows: list[tuple[str, float]] = []
    rows.append(
        (
            "certificate check, first sight (Ed25519 verify)",
            _per_call(
                lambda: _check_fresh(policy, ids, certs, next(fresh) % len(ids), now),
                200,
            ),
        )
    )
    rows.append(
        ("certificate check, cached", _per_call(lambda: policy.check(ids[0], certs[0], now), 20000))
    )
    raw = entries[0].statement
    rows.append(
        ("carried envelope, first sight", _per_call(lambda: EnvelopeCache().open(raw), 500))
    )
    warm = EnvelopeCache()
    warm.open(raw)
    rows.append(("carried envelope, cached", _per_call(lambda: warm.open(raw), 20000)))
    rows.append(
        (
            f"pulled view of {args.members} members, cold",
            _per_call(lambda: decode_snapshot(data, ids[0], now, verify=EnvelopeCache().open), 5),
        )
    )
    cache = EnvelopeCache()
    decode_snapshot(data, ids[0], now, verify=cache.open)
    rows.append(
        (
            f"pulled view of {args.members} members, warm",
            _per_call(lambda: decode_snapshot(data, ids[0], now, verify=cache.open), 5),
        )
    )
    print(f"View of {args.members} members: {len(data)} bytes.\n")
    print("| operation | time |\n|---|---:|")
    for name, seconds in rows:
        text = f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"
        print(f"| {name} | {text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
