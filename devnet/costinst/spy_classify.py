"""Sorts a py-spy CPU profile of a node into subsystems (a measurement aid, not product code).

Input: ``py-spy record -f raw`` output (collapsed stacks, ``frame;frame;... count`` per
line). Each stack goes to the first rule whose substring it contains; stacks whose leaf is
trio's epoll wait are idle and counted apart. Usage:

    python -m devnet.costinst.spy_classify PROFILE.txt [PROFILE.txt ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable

# (substring of the stack, subsystem). Order matters: crypto and the specific tasks come
# before the generic pubsub/yamux frames that sit under them in the same stack.
RULES: tuple[tuple[str, str], ...] = (
    ("ed25519", "crypto: Ed25519 sign/verify"),
    ("nacl", "crypto: Ed25519 sign/verify"),
    ("signing.py", "crypto: Ed25519 sign/verify"),
    ("verify_msg", "crypto: Ed25519 sign/verify"),
    ("GossipSub.heartbeat", "gossipsub heartbeat (mesh/fanout/IHAVE, cleanup)"),
    ("LinkPinger", "liveness pings (initiator)"),
    ("host/ping.py", "liveness pings (responder)"),
    ("ping_probe", "liveness pings (initiator)"),
    ("probes/pubsub_probe.py", "pubsub probe + answers"),
    # The probe's other modules, split out of probes/pubsub_probe.py (issue 16).
    ("probes/probe_responder.py", "pubsub probe + answers"),
    ("probes/probe_wire.py", "pubsub probe + answers"),
    ("probes/rate_limit.py", "pubsub probe + answers"),
    ("adapters/libp2p_link.py", "pubsub probe + answers"),
    ("probes/dht_probe.py", "DHT probe"),
    ("kad_dht", "Kademlia (handler, refresh)"),
    ("identify", "identify"),
    ("adapters/gossip.py", "health gossip service (digests, view, pulls)"),
    # The service's other modules, split out of adapters/gossip.py (issue 16).
    ("adapters/gossip_publisher.py", "health gossip service (digests, view, pulls)"),
    ("adapters/publish_decisions.py", "health gossip service (digests, view, pulls)"),
    ("adapters/gossip_inbound.py", "health gossip service (digests, view, pulls)"),
    ("adapters/view_pull.py", "health gossip service (digests, view, pulls)"),
    ("adapters/link_keeper.py", "health gossip service (digests, view, pulls)"),
    ("adapters/suspect_checks.py", "health gossip service (digests, view, pulls)"),
    ("adapters/gossip_connections.py", "health gossip service (digests, view, pulls)"),
    ("adapters/view_timers.py", "health gossip service (digests, view, pulls)"),
    ("adapters/gossip_metrics.py", "health gossip service (digests, view, pulls)"),
    ("adapters/election_check.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_view", "health gossip service (digests, view, pulls)"),
    ("mesh/digest", "health gossip service (digests, view, pulls)"),
    # The view's and the wire format's other modules, split out of mesh/cluster_view.py and
    # mesh/digest.py (issue 16).
    ("mesh/cluster_transitions.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_events.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_roster.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_suspicions.py", "health gossip service (digests, view, pulls)"),
    ("mesh/suspicion.py", "health gossip service (digests, view, pulls)"),
    ("mesh/awareness.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_timers.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_snapshot.py", "health gossip service (digests, view, pulls)"),
    ("mesh/cluster_health.py", "health gossip service (digests, view, pulls)"),
    ("mesh/messages.py", "health gossip service (digests, view, pulls)"),
    ("mesh/rejection.py", "health gossip service (digests, view, pulls)"),
    ("mesh/wire_bounds.py", "health gossip service (digests, view, pulls)"),
    ("mesh/snapshot_codec.py", "health gossip service (digests, view, pulls)"),
    ("mesh/sequencer.py", "health gossip service (digests, view, pulls)"),
    ("Pubsub.handle_sending_messages", "pubsub outbound (write RPCs)"),
    ("continuously_read_stream", "pubsub inbound (read, validate, route)"),
    ("Pubsub.push_msg", "pubsub inbound (read, validate, route)"),
    ("gossipsub.py", "pubsub inbound (read, validate, route)"),
    ("pubsub.py", "pubsub other"),
    ("Yamux.handle_incoming", "yamux+noise read loop (decrypt, demux, window updates)"),
    ("yamux", "yamux other (sweeper, rtt, write)"),
    ("hypercorn", "HTTP server"),
    ("mesh/manager.py", "check manager + local checks"),
    ("probes/local.py", "check manager + local checks"),
    ("probes/enhanced.py", "check manager + local checks"),
    # The enhanced checks' other modules, split out of probes/enhanced.py (issue 16).
    ("probes/scores.py", "check manager + local checks"),
    ("probes/task_source.py", "check manager + local checks"),
    ("probes/health_metrics.py", "check manager + local checks"),
    ("probes/summary.py", "check manager + local checks"),
    ("psutil", "check manager + local checks"),
    ("loop_lag", "event-loop lag monitor"),
    ("anyio_service", "libp2p service manager"),
    ("swarm", "swarm/connection handling"),
    ("unrolled_run", "trio scheduler itself"),
)
# Leaves of stacks py-spy caught outside any task frame (trio switches tasks in C).
SOCKET_LEAVES = (
    "_socket.py",
    "_highlevel_socket",
    "io/trio.py",
    "raw_connection",
    "noise",
    "msgio",
    "io/utils.py",
    "varint",
    "net_stream",
)
IDLE = "idle (epoll wait)"


def classify(stack: str) -> str:
    """Subsystem of one collapsed stack, or :data:`IDLE`."""
    leaf = stack.rsplit(";", 1)[-1]
    if "get_events" in leaf or "EpollIOManager" in leaf:
        return IDLE
    for needle, name in RULES:
        if needle in stack:
            return name
    if any(needle in leaf for needle in SOCKET_LEAVES):
        return "socket/noise I/O (stack without its task)"
    if "trio" in leaf or "outcome" in leaf or "contextlib" in leaf:
        return "trio primitives (stack without its task)"
    return "other"


def tally(lines: Iterable[str]) -> Counter[str]:
    """Samples per subsystem (idle included) from ``stack count`` lines."""
    totals: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            totals[classify(stack)] += int(count)
    return totals


def report(totals: Counter[str]) -> str:
    idle = totals.get(IDLE, 0)
    busy = {name: n for name, n in totals.items() if name != IDLE}
    busy_total = sum(busy.values())
    lines = [f"samples busy={busy_total} idle(epoll)={idle}"]
    for name, n in sorted(busy.items(), key=lambda item: -item[1]):
        lines.append(f"{100 * n / busy_total:5.1f}%  {n:5d}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="+", help="py-spy -f raw output files")
    args = parser.parse_args(argv)
    totals: Counter[str] = Counter()
    for path in args.profiles:
        with open(path) as handle:
            totals += tally(handle)
    print(report(totals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
