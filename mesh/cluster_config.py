"""Timing of the cluster view: one frozen dataclass, its presets and the timing formulas.

Like memberlist's ``config.go``: every field says its unit, default and trade-off, and the
presets are built from one another (``production`` is the default, ``devnet`` and ``test``
are ``dataclasses.replace`` of it). The formulas are pure functions so they can be tested
as tables.

Detection times these presets are designed for (the bar is HashiCorp Serf on the same
machine: a killed agent is failed after 5.8-6.8 s, a SIGSTOPped one after ~6 s):

=========  ===============================================  ==============================
preset     killed peer (libp2p disconnect in ~0.2 s)        frozen peer (SIGSTOP)
=========  ===============================================  ==============================
devnet     0.2 s + suspicion min 2.0 s = ~2.2 s             a ping failed on the kernel's
                                                            word (0.75-1.25 s: the next
production 0.2 s + 1.0 s = ~1.2 s                           ping plus 0.75 s, adapters/
                                                            tcp_witness.py) + 1.0 s = ~2.2 s
                                                            (devnet: + 2.0 s = ~3.2 s);
                                                            on a lossy link the 2 s ping
                                                            timeout: ~4 s (production's
                                                            digest silence alone: 45 s)
=========  ===============================================  ==============================

With ``P2PConfig.ping_network_awareness`` (off as the node ships: on two cores the
failures we time loaded the nodes enough to stretch their own verdicts) each member's ping
answered later than 200 ms stretches these times by one more multiple and each timely
answer takes one away (``Awareness.network``).

A killed peer whose port refuses our dial-back (``refused_grace``) is dead sooner in every
preset: a few milliseconds to see the connection close (adapters/peer_events.py hears the
close begin), a millisecond for the refused dial, then 0.1 s; peers not connected to it
dial it when they hear the suspicion if they have met it, and where members are certified
take ``refusal_witnesses`` others' refused dials as their own (rule 7, ``mesh.suspicion``):
at 1,000 members, 0.1 s everywhere instead of the 12 s suspicion. A machine that
vanished (no reset, the dial times out) and a frozen process (its kernel still accepts
connections) take the times of the table.

The devnet heartbeat is 0.5 s up to 4 nodes; from 5 on it stretches to keep the topic under
8 refresh messages a second (0.625 s at 5 nodes: frozen in ~3.9 s).

Both assume at least ``suspicion_confirmations`` other observers confirm (in a cluster of
n <= 3 none are expected and the minimum applies at once); a lone observer in a larger cluster
waits up to ``suspicion_max_mult`` times longer (Lifeguard, Dadgar et al. 2017, IV-B).

Gossip load: each node publishes one digest per ``refresh_interval(n)`` plus one per change
(at most one per ``min_publish_interval``), so the topic carries about
``n / refresh_interval(n) <= max_refresh_rate`` refresh messages a second whatever n is;
where members are certified (``certified``), ``refresh_crowd / n`` beyond 48 members (0.08
a second at 1,000: the heartbeat of a large certified cluster is its pings).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mesh.errors import ConfigError
from mesh.suspicion_timing import expected_confirmations, suspicion_bounds, suspicion_timeout

# The most awareness_max may be: our digests carry our local health, up to awareness_max - 1,
# and peers reject a digest whose local health is above MAX_AWARENESS - 1
# (mesh/wire_bounds.py, MAX_LOCAL_HEALTH).
MAX_AWARENESS = 65

# Witnesses a certified cluster needs (ClusterConfig.refusal_witnesses): two, so that no
# single admitted member's word makes anyone dead.
CERTIFIED_WITNESSES = 2
# ClusterConfig.refresh_crowd where members are certified: refreshes as before up to 48
# members (production) or 20 (devnet), then every n² / 80 seconds.
CERTIFIED_REFRESH_CROWD = 80.0
# ClusterConfig.max_members where members are certified. The 1,024 of an open cluster bounds
# how many minted identities can swell a view; only admitted peers enter a certified one, and
# the simulator's 10,000-node rows (issue 15) found 1,024 refusing most of such a cluster
# (VIEW_FULL). A 16,384-member view is about 38 MiB without suspicions (view_memory.py).
CERTIFIED_MAX_MEMBERS = 16384
OPEN_MAX_MEMBERS = 1024  # ClusterConfig.max_members's default

__all__ = [
    "CERTIFIED_MAX_MEMBERS",
    "CERTIFIED_REFRESH_CROWD",
    "CERTIFIED_WITNESSES",
    "MAX_AWARENESS",
    "OPEN_MAX_MEMBERS",
    "ClusterConfig",
    "certified",
    "devnet",
    "expected_confirmations",
    "production",
    "suspicion_bounds",
    "suspicion_timeout",
    "test",
]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    # --- dissemination -------------------------------------------------------------------
    # Seconds between two digests a node publishes when nothing changed: the heartbeat.
    # Shorter detects silent (frozen) peers sooner and costs n/refresh_period messages a
    # second on the topic. Stretched for large clusters, see refresh_interval().
    # Production: 30 s, memberlist's push/pull interval and our anti-entropy's. The
    # heartbeat only finds peers whose gossip stalls while their process still answers
    # pings (crashes, freezes and leaves are found otherwise); anti-entropy repairs lost
    # digests. Refreshes were the largest share of an idle node's bytes: 41 % at 5 s,
    # 37 % at 15 s (devnet/cost_breakdown.py, 2026-12-02 and 2026-12-03). What a longer
    # one costs: a member whose gossip stalls is suspected after 90 s, and in an open
    # cluster a joiner counts a member for the election once it has heard its next
    # refresh (where members are certified, two pulled views vouch for it at once).
    refresh_period: float = 30.0
    # Messages a second the refreshes of the whole cluster may add to the topic. With n
    # members each refreshes every max(refresh_period, n / max_refresh_rate) seconds, like
    # memberlist's pushPullScale. The ceiling is "well under 10 msgs/s/topic".
    max_refresh_rate: float = 5.0
    # Refreshes thin out quadratically in a large cluster: a node refreshes at least every
    # n² / refresh_crowd seconds, so the whole cluster's refreshes fall as refresh_crowd / n
    # a second. The certified 80 changes nothing up to 48 members in production (30 s)
    # and 20 in the devnet preset; 125 s at 100 members, 3.5 h at 1,000. Where members are
    # certified the heartbeat has little left to do in a large cluster: pings find frozen
    # members, closed and refused connections crashed ones, and anti-entropy
    # (adapters/view_pull.py) brings back what gossip lost; at 1,000 nodes this takes idle
    # traffic from 18 KB/s a node to under 1 KB/s (devnet/simulator/RESULTS.md). 0 (an
    # open cluster's default): never, for minted members counted in n would stretch our
    # heartbeat quadratically while our peers' n stays small (rule 2).
    refresh_crowd: float = 0.0
    # Seconds between two change-triggered digests: a flapping check cannot flood the topic.
    # Longer delays the news of a change by up to this much.
    min_publish_interval: float = 1.0

    # --- failure detection ---------------------------------------------------------------
    # Refresh intervals without a new digest before we suspect a peer. At least 2, so one
    # lost digest is never an alarm; higher tolerates more loss and detects a frozen peer
    # later (silence_timeout = silence_periods * refresh_interval(n)).
    silence_periods: int = 3
    # The time unit of the suspicion timeout (memberlist's ProbeInterval), seconds.
    # Minimum suspicion timeout = suspicion_mult * max(1, log10(n)) * suspicion_interval:
    # the time a wrongly suspected peer has to refute. Shorter detects sooner and gives a
    # live peer less time to hear of the suspicion and answer (refutation takes one gossip
    # round trip, tens of milliseconds; the rest is margin for GC pauses and loss).
    # Production: 0.5 s, our ping interval, so 1.0 s at 10 members with suspicion_mult 2.
    # History: memberlist's LAN 4 s until 2026-12-03. 1.5 s with a 1 s ping timeout found
    # frozen peers in 2.9-3.8 s but made 57 live nodes dead in 5 minutes of 20 % packet
    # loss (make bench, loss part, 2026-12-02): lost pings failed, confirmations came from
    # other lost pings, and a refutation that needs retransmits arrived too late. 1.4 s
    # with measured ping timeouts from 0.5 s (adapters/link_timing.py) found them in
    # 2.3-2.5 s at 5 nodes, but 20 nodes starting on two cores suspected each other by the
    # hundred (2026-12-03). Now a ping fails early only on the kernel's word that the
    # peer's process is silent on a clean link (adapters/tcp_witness.py); loss and our own
    # lag still wait the 2 s ping timeout, and the loss soak at 7c6f3db found no false
    # death (855 suspicions at 20 %, all refuted). Crashes do not wait for it when a
    # dial-back is refused (rule 7).
    suspicion_interval: float = 0.5
    # memberlist's SuspicionMult (LAN default 4). 2 here: with 0.5 s it makes 1.0 s at 10
    # members, 1.3 s at 20 (see suspicion_interval for what shorter ones cost under loss:
    # there the pings wait 2 s, and a lone observer's suspicion, which random loss makes,
    # waits suspicion_max_mult times longer). 3 until 2026-12-04: 1.95 s at 20 members
    # put a frozen peer's death at 3.5 s in make bench, against issue 13's 3 s.
    suspicion_mult: int = 2
    # Lifeguard's "Max = beta * Min" (IV-B): a suspicion nobody confirms waits this many
    # minimum timeouts. Higher suffers fewer false positives from one unlucky observer.
    # memberlist's SuspicionMaxTimeoutMult is 6; 9 with suspicion_mult 2 keeps an
    # unconfirmed suspicion as long as it was with 3 and 6 (9 s at 10 members): a lone
    # observer behind a lossy link waits as long as before.
    suspicion_max_mult: int = 9
    # Lifeguard's K: independent confirmations that drive the timeout down to the minimum.
    # memberlist uses SuspicionMult - 2. Taken as 0 when n - 2 < K (too few others to ask).
    suspicion_confirmations: int = 2
    # Seconds from our own refused dial-back (nothing listens at the peer's advertised
    # address any more: the kernel answered a reset, which no peer can forge for another)
    # to death, whatever the confirmations and our local health. Not zero, so a digest the
    # peer sent just before it died, still on its way, finds it suspect, not dead. Longer
    # only delays the news of a crash.
    refused_grace: float = 0.1
    # Witnesses (rule 7): this many members' notices saying their own dial to a suspect was
    # refused count as our own refusal. 0 (the default, and any open cluster, where
    # identities are free) trusts no one's refusal; the gossip service sets
    # CERTIFIED_WITNESSES where an admission policy certifies every member. 1 would let a
    # single lying member make a live one dead until it refutes; more need more observers
    # with a link to the crashed member (meet_links each).
    refusal_witnesses: int = 0
    # Lifeguard's local health multiplier, S (IV-A; memberlist's AwarenessMaxMultiplier):
    # while this node is itself starved its timeouts are multiplied by up to this much.
    awareness_max: int = 8
    # The local health a member is taken to report while its own digest says it is starting
    # (its first checks running): busiest then, it answers pings late on a shared host
    # without lagging enough to call itself starved (a 30-node devnet on two cores lost a
    # starting node to a suspicion it refuted 0.4 s late, 2026-12-04). A suspicion of it
    # lasts that many multiples longer and the pinger is patient with it; 0 turns it off.
    starting_health: int = 2
    # Seconds our failed pings and refutations count towards self-doubt (mesh.self_doubt):
    # each alive member failed beyond the first, and each member we refuted, adds one multiple
    # to the pinger's interval and timeout (not to these timeouts).
    # Longer keeps a node that found itself slow careful for longer; it must span several
    # pings (0.5 s apart) for distinct failures to add up at all.
    doubt_window: float = 10.0

    # --- forgetting ----------------------------------------------------------------------
    # Seconds a dead peer stays listed (as dead) before the view drops it. Longer keeps the
    # failure visible to operators; memory is a few hundred bytes a peer.
    dead_forget_after: float = 600.0
    # Seconds a peer that left gracefully stays listed (as left).
    left_forget_after: float = 300.0

    # --- validation ----------------------------------------------------------------------
    # Seconds a message's sent_at may be ahead of our clock (FUTURE beyond). Wider tolerates
    # worse clocks; a message dated in the future outlives max_message_age by this much.
    max_clock_skew: float = 30.0
    # Seconds a gossiped message's sent_at may be behind our clock (STALE beyond). Bounds
    # how long an old signed message can be replayed; must cover clock skew too.
    max_message_age: float = 60.0

    # --- bounds (every peer may be hostile) ------------------------------------------------
    # Members the view holds at most, dead and left ones included; a new member beyond it is
    # refused (VIEW_FULL) until others are forgotten. Also the most members a pulled snapshot
    # may list. Memory is a few KB a member; the timing formulas scale with n, so a view
    # swollen by fake members would slow detection (issue 12): with an admission policy only
    # admitted peers count towards it.
    max_members: int = OPEN_MAX_MEMBERS
    # New members the view takes: a burst, then so many a second (JOIN_RATE beyond). A
    # joining node learns join_burst members from its first pull and the rest at
    # join_rate; in an open cluster this is how fast minted identities can fill the view.
    join_burst: int = 256
    join_rate: float = 4.0
    # Rule 2: where an admission policy certifies every member (certified()), a member
    # that two responders' pulled views list alive counts in n and for the election, as
    # one heard on the topic: no responder can list minted identities there, and no one
    # responder can bring back a member that died long ago.
    certified_members: bool = False
    # Others' observations kept per suspicion, ours beside them (Lifeguard's K is 2-3; more
    # add nothing but memory).
    max_observers: int = 16

    # --- history -------------------------------------------------------------------------
    history_per_member: int = 32  # transitions kept per member (newest)
    history_size: int = 1000  # transitions kept for the whole view (newest)

    def __post_init__(self) -> None:
        for name in (
            "refresh_period",
            "max_refresh_rate",
            "suspicion_interval",
            "dead_forget_after",
            "left_forget_after",
            "max_clock_skew",
            "max_message_age",
            "join_rate",
            "doubt_window",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"cluster {name} must be a positive number, got {value!r}")
        for name in ("min_publish_interval", "refused_grace", "refresh_crowd"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"cluster {name} must be >= 0, got {value!r}")
        minimums = {
            "silence_periods": 2,
            "suspicion_mult": 1,
            "suspicion_max_mult": 1,
            "suspicion_confirmations": 0,
            "refusal_witnesses": 0,
            "awareness_max": 1,
            "starting_health": 0,
            "history_per_member": 1,
            "history_size": 1,
            "max_members": 2,
            "join_burst": 1,
            "max_observers": 1,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"cluster {name} must be an integer >= {minimum}, got {value!r}")
        if self.starting_health > MAX_AWARENESS - 1:
            raise ConfigError(
                f"cluster starting_health must be at most {MAX_AWARENESS - 1},"
                f" got {self.starting_health}"
            )
        if self.awareness_max > MAX_AWARENESS:
            raise ConfigError(
                f"cluster awareness_max must be at most {MAX_AWARENESS}, got {self.awareness_max}"
            )
        if self.max_message_age < self.max_clock_skew:
            # Otherwise a sender whose clock lags by less than the skew we accept would
            # still see all its messages rejected as stale.
            raise ConfigError("cluster max_message_age must be at least max_clock_skew")

    # Formulas ---------------------------------------------------------------------------

    def refresh_interval(self, n: int) -> float:
        """Seconds between a node's refresh digests in a cluster of ``n`` members."""
        spread = max(1, n) / self.max_refresh_rate
        crowd = n * n / self.refresh_crowd if self.refresh_crowd else 0.0
        return max(self.refresh_period, spread, crowd)

    def publish_due(self, *, now: float, last_sent: float | None, changed: bool, n: int) -> bool:
        """Whether a node should publish its digest now: on a change (rate-limited by
        ``min_publish_interval``) or when the refresh interval has passed. A refutation
        is not subject to this rule: it is published at once."""
        if last_sent is None:
            return True
        elapsed = now - last_sent
        if changed and elapsed >= self.min_publish_interval:
            return True
        return elapsed >= self.refresh_interval(n)

    def silence_timeout(self, n: int) -> float:
        """Seconds without a new digest before a peer is suspected (before local health)."""
        return self.silence_periods * self.refresh_interval(n)

    def suspicion_timeout(self, n: int, confirmations: int, known: int | None = None) -> float:
        """Seconds from suspicion to death (before local health); see ``suspicion_timeout``."""
        return suspicion_timeout(
            n,
            confirmations,
            mult=self.suspicion_mult,
            max_mult=self.suspicion_max_mult,
            interval=self.suspicion_interval,
            k=self.suspicion_confirmations,
            known=known,
        )


# Presets ------------------------------------------------------------------------------


def certified(config: ClusterConfig, enabled: bool = True) -> ClusterConfig:
    """``config`` as a cluster whose members an admission policy certifies (``enabled``)
    runs it, else as an open one. Certified: two members' refused dials count as our own
    (rule 7); the join gate takes the whole view at once, for it only slows minted
    identities, which a certified cluster does not admit, and members two pulled views
    list count at once (rule 2), so a joiner learns a view of any size from its first
    pulls; refreshes thin out quadratically (CERTIFIED_REFRESH_CROWD); the view holds up
    to CERTIFIED_MAX_MEMBERS. Open: nobody's refusal counts but our own, and every setting
    stays as ``config`` has it."""
    if not enabled:
        return dataclasses.replace(config, refusal_witnesses=0)
    # The open bound is raised; a bound someone set on purpose is kept.
    chosen = config.max_members != OPEN_MAX_MEMBERS
    max_members = config.max_members if chosen else CERTIFIED_MAX_MEMBERS
    return dataclasses.replace(
        config,
        refusal_witnesses=CERTIFIED_WITNESSES,
        max_members=max_members,
        join_burst=max_members,
        certified_members=True,
        refresh_crowd=config.refresh_crowd or CERTIFIED_REFRESH_CROWD,
    )


def production() -> ClusterConfig:
    """Gentle on the topic (30 s refresh, at most 5 refresh messages a second
    cluster-wide): a killed peer dead in ~0.2 s where its port refuses our dial-back,
    else ~1.2 s, a frozen one in ~2.2 s (later on a lossy or loaded network), at 10
    members."""
    return ClusterConfig()


def devnet() -> ClusterConfig:
    """A few nodes on one machine: 0.5 s heartbeat stretched to keep the whole cluster at 4
    messages a second (1 s at 4 nodes, 2.5 s at 10), a killed peer dead in ~2.2 s, a frozen
    one in ~5 s. py-libp2p stops forwarding a forwarder's messages beyond 10 a second per
    topic and every node forwards everyone's digests: an 8 msgs/s cap left no room for
    suspicions and probes, and a 10-node devnet never converged (make bench, 2026-11-28)."""
    return dataclasses.replace(
        production(),
        refresh_period=0.5,
        max_refresh_rate=4.0,
        min_publish_interval=0.1,
        # 0.5 s * 4 = 2.0 s minimum: four heartbeats, so a live peer refutes by its next
        # digest even if it never hears the suspicion.
        suspicion_interval=0.5,
        suspicion_mult=4,
        # 6.0 s for an unconfirmed lone suspicion: still no slower than Serf.
        suspicion_max_mult=3,
        dead_forget_after=60.0,
        left_forget_after=30.0,
    )


def test() -> ClusterConfig:
    """Round numbers for unit and scenario tests under a mock clock: 1 s heartbeat, 3 s of
    silence, suspicion 4 s (8 s unconfirmed), forget after 30 s dead / 10 s left."""
    return dataclasses.replace(
        devnet(),
        refresh_period=1.0,
        max_refresh_rate=1000.0,  # no stretching: timings independent of n
        min_publish_interval=0.0,
        suspicion_interval=1.0,
        suspicion_max_mult=2,
        awareness_max=4,
        dead_forget_after=30.0,
        left_forget_after=10.0,
        max_clock_skew=5.0,
        max_message_age=10.0,
    )


# Not a test function: keep pytest from collecting it when a test module imports it.
test.__test__ = False  # type: ignore[attr-defined]
