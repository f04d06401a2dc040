"""The gossip service's own knobs (``GossipTuning``) and the publish budget they set.

The failure detector's timing is ``mesh.cluster_config``'s; these are the adapter's: its
loops, the publish budget, the pull protocol's bounds, the rates inbound messages are held
to, redials, meetings and dial-backs. Apart from the service that reads them, so the
simulator (``devnet/simulator``) and the cost tools use the very same values and the very
same budget without importing the service's trio and libp2p glue.

The publish budget. Two token buckets, one for our digests and one for our suspicions (so
that a detection never waits behind our news: ``adapters.publish_decisions``), cap
everything we publish but refutations and the leave notice, each at this node's share of a
cluster-wide budget (``GossipTuning.topic_rate / n``, at most ``publish_rate``): every node
handles every message on the topic, D times over, so it is the whole topic's rate that
costs CPU. With a fixed per-node rate a 20-node devnet in trouble published a hundred
digests and suspicions a second, the backlog delayed messages past ``max_message_age`` and
nobody recovered (2026-11-28).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.meetings import MeetLimits
from mesh import cluster_json as shapes

__all__ = ["GossipTuning", "publish_budget"]


@dataclass(frozen=True, slots=True)
class GossipTuning:
    """The adapter's own knobs (the failure detector's are in ClusterConfig). Seconds,
    bytes and counts."""

    # Longest sleep of the tick loop; the view's next deadline usually comes first. Also
    # how often the starved flag is re-read. Shorter costs wake-ups.
    tick_max: float = 0.25
    # How often the publisher re-reads our status and score to notice a change.
    publish_poll: float = 0.25
    # Messages a second the digests of the whole cluster may add to the topic, and as many its
    # suspicions (refutations and the leave are not counted); each node takes topic_rate / n of
    # each (n from the view), capped by publish_rate, with a burst of burst_seconds of its rate
    # (at least 2, at most publish_burst). The refreshes of ClusterConfig.max_refresh_rate come
    # out of it. Higher spreads changes sooner in a large cluster and costs every node CPU.
    topic_rate: float = 10.0
    publish_rate: float = 5.0
    publish_burst: float = 5.0
    burst_seconds: float = 5.0
    # Suspicions waiting for a token; more are dropped (silence detects them anyway).
    max_pending_suspects: int = 256
    # Connection events between the network's task and ours; overflow is dropped and logged.
    event_queue: int = 256
    # Pull client: how long a new connection may take to show its subscription to our
    # topic (no subscription: not a health-mesh peer, no pull), the whole exchange,
    # attempts, and concurrent pulls.
    pull_subscription_wait: float = 5.0
    pull_timeout: float = 5.0
    pull_attempts: int = 2
    pull_retry_delay: float = 0.25
    max_concurrent_pulls: int = 4
    # Seconds one pull may take in all, every page and retry included.
    pull_deadline: float = 20.0
    # Anti-entropy (PullClient.run): seconds between two pulls of what differs from a
    # random connected member's view, jittered by half either way (memberlist's push/pull
    # interval). Shorter repairs lost statements sooner; each costs a 512-byte summary, a
    # libp2p stream on each side and, while the views agree, an answer of some 100 bytes,
    # whatever n is. At 10 s the bench's idle CPU at 5-20 nodes rose by 0.2-0.4 points of
    # a core (2f6f1a9, inside the run-to-run spread but in every size), so 30 s.
    sync_interval: float = 30.0
    # The first sync_early syncs after start come every sync_first seconds, the next ones
    # doubling up to sync_interval: 100 nodes starting within a second lose most of each
    # other's first digests to the budget for strangers (in an open cluster; a certified
    # one has a larger pool for newcomers, adapters/signer_budget.py), and a node pulling
    # from a random peer that misses as much needs some five rounds (each squares the
    # share of nodes still missing a member). In the simulator (seed 1, before the pool)
    # such a storm converged 17.4 s after its last start with syncs at 1, 3, 7 and 15 s,
    # and 9.5 s with these (3.6 s at 1 % loss); 20 s before anti-entropy.
    sync_first: float = 1.0
    sync_early: int = 5
    # Pulls started a second, with a burst: verifying a pulled view costs up to ~0.2 ms a
    # member the first time, and in an open cluster a stranger that reconnects under fresh
    # identities would otherwise have us verify views at its pace. A node that skips a pull
    # still learns the view by gossip.
    pull_rate: float = 1.0
    pull_burst: float = 8.0
    # Pull server: a peer that opens a stream and never finishes its request must not hold
    # a task; per-peer and global rate limits; concurrent streams served.
    serve_read_timeout: float = 2.0
    serve_write_timeout: float = 5.0
    serve_rate: float = 1.0
    serve_burst: float = 3.0
    serve_global_rate: float = 20.0
    serve_global_burst: float = 20.0
    # Later pages of a view too large for one snapshot (about 1,300 members a page): a
    # joiner of a 10,000-member cluster asks one peer for 8 in a row. Rate-limited apart
    # from first pages, with a global limit of their own as large as theirs.
    serve_page_rate: float = 4.0
    serve_page_burst: float = 16.0
    # Messages a second one signer may have us accept and forward (with a burst); beyond
    # that they are rejected as FLOODED. An honest node publishes at most publish_rate of
    # digests and as many suspicions, plus a refutation every refute_interval (checked
    # below); py-libp2p's own per-forwarder limit is raised out of the way
    # (P2PConfig.gossip_forward_limit), so this is what bounds a flooding peer.
    signer_rate: float = 12.0
    signer_burst: float = 20.0
    # All members' messages together, a few times the designed topic rate: in an open
    # cluster each minted identity that joined would otherwise add signer_rate. A
    # certified cluster's newcomers share a pool apart, at this rate
    # (adapters/signer_budget.py).
    signer_global_rate: float = 40.0
    signer_global_burst: float = 200.0
    # In an open cluster, signers that are not members of our view share one bucket:
    # identities are free to mint, and a fresh bucket each would let a stranger with a
    # thousand keys flood us. Its burst covers a cluster's first digests when a node
    # starts. A certified cluster counts a newcomer as a member: its certificate was
    # checked first (adapters/signer_budget.py).
    stranger_rate: float = 10.0
    stranger_burst: float = 64.0
    max_concurrent_serves: int = 8
    # Pulls one peer may have us serve at once: one peer must not take every slot.
    max_serves_per_peer: int = 1
    # Seconds between two refutations: each answers every suspicion of the incarnation it
    # raises, and a liar sending notice after notice must not make us publish at its pace
    # (refutations skip the publish budget). Well inside the shortest suspicion timeout.
    refute_interval: float = 1.0
    # Redialling a lost peer: first attempt after this, doubling up to the cap.
    # A healed partition is found again within about redial_max (issue 13: views agree
    # within 3 s of a heal; Serf retries every 30 s). Each dead member costs a dial every
    # redial_max until it is forgotten, at most max_concurrent_redials at once. A dial
    # into a partition waits on SYN retransmissions (1 s, then 2 s, 4 s: Linux's backoff);
    # given up after redial_timeout, the next dial's first SYN goes out at once, so after a
    # heal a SYN gets through within about a second. 5 s left a dial begun during the cut
    # waiting up to 4 s after the heal (3 | 3 heal median 6.1 s, make bench, 2026-12-02).
    redial_initial: float = 0.5
    redial_max: float = 2.0
    # Seconds a member must stay dead before our open link to it is closed
    # (adapters/link_keeper.py): longer than a mistaken death takes to be refuted in a
    # storm, shorter than a partition worth healing quickly.
    dead_link_grace: float = 5.0
    redial_timeout: float = 2.0
    redial_check: float = 0.25
    max_concurrent_redials: int = 8
    # Meeting members (adapters/meetings.py, issue 13): each member heard of is dialled
    # once a life while we link fewer than meet_links members, so our own dial-back can
    # see its crash (a refused dial within a second, not a suspicion waited out). Each link
    # costs GossipSub's lazy gossip to up to 6 non-mesh peers a heartbeat. 0: links come
    # from bootstrap and redials only (sparse simulated topologies). At most meet_rate
    # meetings a second (burst meet_burst; a node joining 20 that met 18 at once missed
    # pings and suspected live peers, make bench 2026-12-02), meet_slots at once, each
    # given meet_timeout: apart from the redials', so a stranger's addresses that swallow
    # SYNs cannot hold up the redial of a lost member. A host where meet_host_failures
    # meetings failed within meet_host_window seconds waits out the window. Queue and
    # memories are bounded (meet_queue, met_memory).
    meet_links: int = 32
    # Each meeting of a member that started after us waits a random time up to
    # meet_spread s per member of our view (1.25 s at 5 members, 7.5 s at 30), at most
    # meet_spread_max, so the members that hear of a joiner do not all dial it at once
    # (adapters/meetings.py).
    meet_spread: float = 0.25
    meet_spread_max: float = 10.0
    meet_rate: float = 2.0
    meet_burst: float = 4.0
    meet_slots: int = 2
    meet_timeout: float = 2.0
    meet_queue: int = 256
    met_memory: int = 4096
    meet_host_failures: int = 3
    meet_host_window: float = 60.0
    # Dial-backs (adapters/dialback.py): a peer whose connection closed, or that is
    # suspected while we hold no connection to it, is dialled once per dialback_cooldown
    # (the timeout per address; concurrent dials; requests waiting, more are dropped). A
    # refused dial makes it dead after ClusterConfig.refused_grace.
    dialback_timeout: float = 1.0
    dialback_cooldown: float = 1.0
    # A dial that connects is kept this long after the connect, in case it is reset:
    # a killed process closes our old connection first and its listener a moment later,
    # so a dial-back in between connects, and is reset (adapters/dialback.py). Taken as
    # open, it cost 1 observer in 3 of 10 kills a second of cooldown (2026-12-04).
    dialback_hold: float = 0.1
    # A connected suspect that left our out-of-turn ping unanswered is pinged out of turn
    # again only after recheck_base s, doubling per miss up to recheck_ceiling
    # (adapters/recheck_backoff.py): 28 observers pinging an overwhelmed newest node every
    # 2 s kept a 30-node devnet from ever agreeing (2026-12-03).
    recheck_base: float = 2.0
    recheck_ceiling: float = 32.0
    max_concurrent_dialbacks: int = 4
    max_pending_dialbacks: int = 64
    # Dial-backs a second to all peers together, with a burst (beyond: dropped).
    dialback_rate: float = 10.0
    dialback_burst: float = 32.0
    # A certified member we never met is dialled back where it advertised itself only
    # while the view has at most this many live members heard firsthand (live_count;
    # adapters/suspect_checks.py), kept equal to meet_links. Up
    # to meet_links every node meets every member, so never having met one is a joiner's
    # first seconds; in a larger cluster it is the rule, a dial from every such node would
    # be an accept storm on a suspect that may be alive, and witnesses do the work.
    unmet_dial_members: int = 32
    # leave(): wait at most this long for py-libp2p's outbound queues to drain, then this
    # much for the last popped frame's write to finish.
    leave_flush_timeout: float = 1.0
    leave_flush_grace: float = 0.05
    # (signer, reason) pairs already logged; bounded so a flood cannot grow memory.
    rejection_log_keys: int = 1024
    history_in_json: int = shapes.DEFAULT_HISTORY

    def __post_init__(self) -> None:
        # Our peers hold us to what we hold them to: an honest node's most must pass.
        honest_rate = 2 * self.publish_rate + 1 / self.refute_interval
        if honest_rate > self.signer_rate or 2 * self.publish_burst + 1 > self.signer_burst:
            raise ValueError(
                "GossipTuning.signer_rate and signer_burst must admit 2 * publish_rate (and "
                "burst) plus a refutation every refute_interval"
            )
        # A zero would have the sync loop spin; a negative sleep raises out of the service.
        for name in ("sync_first", "sync_interval", "pull_timeout", "pull_deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GossipTuning.{name} must be > 0, got {getattr(self, name)!r}")
        # The wake grid's periods (mesh/wake_grid.py): a zero raises out of a loop, infinity
        # stops it.
        for name in ("publish_poll", "tick_max", "redial_check"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"GossipTuning.{name} must be finite and > 0, got {value!r}")
        if self.sync_early < 0:
            raise ValueError(f"GossipTuning.sync_early must be >= 0, got {self.sync_early!r}")
        # A negative sleep raises out of a task; NaN or infinity would stall meetings.
        for name in ("dead_link_grace", "meet_spread", "meet_spread_max", "dialback_hold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"GossipTuning.{name} must be finite and >= 0, got {value!r}")


def publish_budget(tuning: GossipTuning, n: int) -> tuple[float, float]:
    """One node's (rate, burst) of publishes in a cluster of ``n`` (module docstring)."""
    rate = min(tuning.publish_rate, tuning.topic_rate / max(1, n))
    return rate, min(tuning.publish_burst, max(2.0, rate * tuning.burst_seconds))


def meet_limits(tuning: GossipTuning) -> MeetLimits:
    """The meetings scheduler's limits (``adapters.meetings``) from the meet_* knobs."""
    return MeetLimits(
        links=tuning.meet_links,
        rate=tuning.meet_rate,
        burst=tuning.meet_burst,
        queue=tuning.meet_queue,
        memory=tuning.met_memory,
        host_failures=tuning.meet_host_failures,
        host_window=tuning.meet_host_window,
        spread=tuning.meet_spread,
        spread_max=tuning.meet_spread_max,
    )
