"""Scenarios: build a cluster, break it one way, and measure how the views find out.

- ``join``: nodes start one after another (each dialling ``links`` nodes started before
  it); converged once every node's view holds all n members alive. Time from the last start.
- ``crash``, ``freeze``, ``leave``: a running cluster (see ``warm_start``) loses one node
  (killed, SIGSTOPped, stopped gracefully); the time until each live node's view holds it
  dead (left, for ``leave``), p50 and p99 over observers, within ``duration`` (60 s).
- ``idle``: a running cluster where nothing happens: what it costs at rest.
- ``starve``: 5 % of the nodes run every timer and message late (exponential lag, mean
  ``lag``) and their views know they are starved; nobody fails, so every death is false.

Every scenario counts false deaths (a node that is up, made dead in somebody's view) and
the traffic of the scenario's window.

Sampled (``sample`` S > 0): only S nodes run a view (``SimNode``), the victim among them,
the rest chosen from the seed; the others are light nodes (``devnet.simulator.light``).
Every figure is then over the S full nodes: observers, false deaths, traffic per node,
publications, the election. Joins need every node's view (pulls), so they are not sampled.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field

from adapters.gossip_tuning import GossipTuning
from adapters.p2p_config import P2PConfig
from devnet.simulator.cluster import HANDSHAKE_RTTS, KAD_K, Cluster
from devnet.simulator.kernel import Life
from devnet.simulator.light import Heard, LightNode
from devnet.simulator.network import LinkModel
from devnet.simulator.overlay import GossipParams
from mesh.cluster_config import ClusterConfig, certified, production
from mesh.cluster_transitions import Transition
from mesh.digest import encode_gossip
from mesh.election import elect_admin
from mesh.messages import MemberState

__all__ = ["SCENARIOS", "Result", "Settings", "build", "run", "warm_start"]

SCENARIOS = ("join", "crash", "freeze", "leave", "starve", "idle")
SETTLE = 5.0  # seconds of a warm cluster before the scenario: meshes form, pings start


@dataclass(frozen=True, slots=True)
class Settings:
    nodes: int
    scenario: str = "crash"
    loss: float = 0.0
    seed: int = 1
    links: int = 4  # connections each node dials (the rest of its links are inbound)
    latency: float = 0.0005  # median one-way link delay, seconds
    duration: float = 0.0  # seconds to watch after the event; 0: the scenario's default
    join_interval: float = 0.01  # seconds between two nodes' starts (join)
    # join: seconds to run on after convergence before the election; cold crash, freeze
    # and leave: seconds from convergence to the event (the bench sees agreement late).
    after: float = 0.0
    starved_fraction: float = 0.05
    lag: float = 0.5  # mean lateness of a starved node's timers, seconds
    config: ClusterConfig = field(default_factory=production)
    # The devnet's shape: every node on 127.0.0.1 (meetings one at a time per host), and a
    # join where each node bootstraps to the one started before it.
    one_host: bool = False
    chain: bool = False
    # crash, freeze, leave as the bench runs them: on a cluster just joined (``join``'s
    # start), at the moment every view agrees, to the bench's victims (node2, 3, 4).
    cold: bool = False
    # No admission policy: refused dials count only for the dialler (refusal_witnesses 0),
    # as adapters.gossip runs an open cluster.
    open: bool = False
    # Measured ping timeouts from this floor (P2PConfig.ping_timeout_floor; off as the node
    # ships), with the view's timeouts stretched by late answers.
    ping_floor: float | None = None
    # Full nodes (a view each) in a sampled run; 0, or n or more: every node is full.
    sample: int = 0


@dataclass(slots=True)
class Result:
    settings: Settings
    observers: int = 0
    seen: list[float] = field(default_factory=list)  # per observer: seconds to see it
    converged_at: float | None = None  # join: seconds after the last start
    false_deaths: int = 0
    window: float = 0.0
    messages: int = 0
    bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    # What the nodes published over the window, by kind (Publisher.published): the
    # messages each member of the topic receives.
    published: dict[str, int] = field(default_factory=dict)
    retransmits: int = 0
    verified: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    view_members: int = 0
    events: int = 0
    admins: int = 0  # distinct admins the live nodes' views elect at the end (1: agreed)
    sample_view: object = None  # one observer's ClusterView, for the memory figure
    full: int = 0  # the nodes measured: those with a view (all of them, unless sampled)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile over all observers; None if any never saw it."""
        if not self.seen or len(self.seen) < self.observers:
            return None
        ordered = sorted(self.seen)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def sampled(settings: Settings) -> frozenset[int] | None:
    """The full nodes of a sampled run (None: all): the victim and ``sample - 1`` others
    drawn from the seed, apart from the cluster's own draws (a sampled run keeps the
    unsampled run's links, victim and seeds)."""
    n, size = settings.nodes, settings.sample
    if size <= 0 or size >= n:
        return None
    if settings.cold or settings.scenario == "join":
        raise ValueError("sampling needs a warm start: not for join, nor --devnet's runs")
    keep = {_victim(settings)}
    rest = [i for i in range(n) if i not in keep]
    return frozenset(keep | set(random.Random(f"sample/{settings.seed}").sample(rest, size - 1)))


def _victim(settings: Settings) -> int:
    """The victim ``run`` draws: the cluster's rng after the network's seed and the nodes'
    (``Cluster.__init__``); ``run`` checks that it is so."""
    rng = random.Random(settings.seed)
    for _ in range(settings.nodes + 1):
        rng.random()
    return rng.randrange(settings.nodes)


def build(settings: Settings) -> Cluster:
    config = certified(settings.config, not settings.open)  # as the gossip service does
    return Cluster(
        settings.nodes,
        seed=settings.seed,
        config=config,
        tuning=GossipTuning(),
        params=GossipParams(),
        link=LinkModel(latency=settings.latency, loss=settings.loss),
        ping_interval=P2PConfig.ping_interval,
        ping_timeout=P2PConfig.ping_timeout,
        ping_floor=settings.ping_floor,
        one_host=settings.one_host,
        full=sampled(settings),
    )


def warm_start(cluster: Cluster, links: int) -> None:
    """A cluster that has been running for a while, built through the public API only:
    random connections, and every view fed every member's first signed digest
    (``ClusterView.on_gossip``) at virtual times the join gate admits (``join_burst`` at
    once, then ``join_rate`` a second), all before time 0. Refresh phases are spread."""
    hosts = cluster.hosts
    n = len(hosts)
    for host in hosts:
        host.life = Life.UP
        host.start_clock()
    statements = []
    for host in hosts:
        digest = host.next_digest() if isinstance(host, LightNode) else host.publisher.next_digest()
        statements.append((digest, host.ident.seal(encode_gossip(digest))))
    cfg = hosts[0].config
    span = max(0.0, (n - cfg.join_burst) / cfg.join_rate) + 1.0
    for node in cluster.nodes:
        own, raw = statements[node.index]
        node.view.on_gossip(own, -span, b"")
        node.view.record_statement(own, raw)
        for j in range(1, n):
            digest, raw = statements[(node.index + j) % n]
            at = -span + max(0.0, (j - cfg.join_burst + 1) / cfg.join_rate) + 1e-6
            node.view.on_gossip(digest, at, raw)
    cluster.net.counting = False
    for host in hosts:
        for peer in cluster.rng.sample(range(n), min(n - 1, links + 1)):
            if peer != host.index and peer not in host.connected:
                cluster.wire_up(host.index, peer)
    _kad_links(cluster)
    _met_already(cluster)
    for host in hosts:
        if isinstance(host, LightNode):
            # What it heard of its links before time 0: their first digests.
            host.heard.update((peer, Heard(statements[peer][0].key)) for peer in host.met)
        host.run_timers(refresh_phase=True)


def _kad_links(cluster: Cluster) -> None:
    """The links each node's routing-table refresh left (``Cluster.kad_refresh``): to the
    ``KAD_K`` nodes closest to it by XOR distance. Approximated by the neighbours in the
    sorted order of the keys (XOR-closest keys share the longest prefix, so they sit near
    each other there), which keeps 10,000 nodes linear."""
    n = len(cluster.hosts)
    by_key = sorted(range(n), key=cluster.kad_key)
    for position, a in enumerate(by_key):
        own = cluster.kad_key(a)
        window = by_key[max(0, position - KAD_K) : position + KAD_K + 1]
        window.sort(key=lambda b: own ^ cluster.kad_key(b))
        for b in window[1 : KAD_K + 1]:
            if b not in cluster.hosts[a].connected:
                cluster.wire_up(a, b)


def _met_already(cluster: Cluster) -> None:
    """The links meetings leave in a cluster that has run a while: of each pair, the node
    whose id sorts first dialled the other while it linked fewer than ``meet_links``
    members (``adapters.meetings``), in no particular order."""
    nodes = cluster.hosts
    limit = nodes[0].tuning.meet_links
    by_id = sorted(range(len(nodes)), key=lambda i: nodes[i].peer_id)
    order = list(range(len(nodes)))
    cluster.rng.shuffle(order)
    rank = {index: r for r, index in enumerate(by_id)}
    for a in order:
        node = nodes[a]
        larger = len(nodes) - rank[a] - 1
        room = limit - len(node.connected)
        if room <= 0 or larger <= 0:
            continue
        picks = cluster.rng.sample(range(rank[a] + 1, len(nodes)), min(larger, room + limit))
        for r in picks:
            if len(node.connected) >= limit:
                break
            if by_id[r] not in node.connected:
                cluster.wire_up(a, by_id[r])


def run(settings: Settings) -> Result:
    cluster = build(settings)
    result = Result(settings)
    nodes = cluster.hosts
    full = cluster.nodes  # the measured nodes: every node, unless sampled
    n = len(nodes)
    cold = settings.cold or settings.scenario == "join"
    victim = cluster.rng.randrange(n)
    assert len(full) == n or victim in {node.index for node in full}, "sampled() drew apart"
    if settings.cold:
        # The bench's victims: SIGKILL node2, SIGSTOP node3, SIGTERM node4 (1-based).
        victim = {"crash": 1, "freeze": 2, "leave": 3}.get(settings.scenario, victim) % n
    target = {"crash": MemberState.DEAD, "freeze": MemberState.DEAD, "leave": MemberState.LEFT}.get(
        settings.scenario
    )
    clock = {"event_at": SETTLE}
    seen: dict[int, float] = {}
    alive_sets: list[set[str]] = [set() for _ in range(n)]
    converged = {"count": 0}
    down: set[int] = set()

    def watch(observer: int, event: Transition) -> None:
        peer = cluster.index_of(event.peer)
        if event.to_state is MemberState.DEAD and peer not in down and peer != observer:
            result.false_deaths += 1
        if (
            target is not None
            and peer == victim
            and observer != victim
            and event.to_state is target
            and observer not in seen
        ):
            seen[observer] = cluster.loop.now - clock["event_at"]
        if cold:
            alive = alive_sets[observer]
            before = len(alive) == n
            if event.to_state is MemberState.ALIVE:
                alive.add(event.peer)
            else:
                alive.discard(event.peer)
            converged["count"] += (len(alive) == n) - before

    cluster.observers.append(watch)
    if cold:
        for i in range(n):
            cluster.loop.at(
                i * settings.join_interval,
                functools.partial(_join, cluster, i, settings.links, settings.chain),
            )
        last_start = (n - 1) * settings.join_interval
        cluster.loop.run_until(
            last_start + 600.0,
            stop=lambda: cluster.loop.now >= last_start and converged["count"] == len(full),
        )
        if converged["count"] == len(full):
            result.converged_at = cluster.loop.now - last_start
        cluster.loop.run_until(cluster.loop.now + settings.after)
        clock["event_at"] = cluster.loop.now
    else:
        warm_start(cluster, settings.links)
        cluster.loop.run_until(SETTLE)
    if settings.scenario == "join":
        start = 0.0  # join's traffic is the join's: from the first start
    else:
        cluster.net.reset_tallies()  # the scenario's window only, not the warm-up
        for node in full:
            node.publisher.published.clear()
        start = cluster.loop.now
    cluster.net.counting = True
    event_at = clock["event_at"]
    if settings.scenario in ("crash", "freeze", "leave"):
        down.add(victim)
        if settings.scenario == "crash":
            cluster.exit(victim, Life.CRASHED)
        elif settings.scenario == "freeze":
            cluster.freeze(victim)
        else:
            nodes[victim].leave()
    elif settings.scenario == "starve":
        starved = cluster.rng.sample(range(n), max(1, round(n * settings.starved_fraction)))
        for index in sorted(starved):
            nodes[index].set_lag(settings.lag)
    if settings.scenario != "join":
        cluster.loop.run_until(event_at + (settings.duration or 60.0))
    result.full = len(full)
    result.observers = len(full) - 1 if target is not None else len(full)
    result.seen = sorted(seen.values())
    result.window = max(1e-9, cluster.loop.now - start)
    for tally in (cluster.net.tallies[node.index] for node in full):
        result.messages += sum(tally.messages.values())
        result.bytes += sum(tally.bytes.values())
        result.retransmits += tally.retransmits
        for kind, count in tally.bytes.items():
            result.by_kind[kind] = result.by_kind.get(kind, 0) + count
    for node in full:
        for kind, count in node.publisher.published.items():
            result.published[kind] = result.published.get(kind, 0) + count
        result.verified += node.verified
        for reason, count in node.rejected.items():
            result.rejected[str(reason)] = result.rejected.get(str(reason), 0) + count
    sample = min(full, key=lambda node: (node.index - victim - 1) % n)  # the next full one
    result.view_members = (
        len(sample.view.members()) if n < 2000 else sum(sample.view.counts().values())
    )
    result.events = cluster.loop.processed
    result.sample_view = sample.view
    # The real election (mesh.election, pure): every live node's view should name one admin.
    live = [node for node in full if node.life is Life.UP]
    result.admins = len({elect_admin(node.view.candidates()) for node in live})
    return result


def _join(cluster: Cluster, index: int, links: int, chain: bool) -> None:
    """Start node ``index`` and dial ``links`` nodes started before it (with ``chain``,
    the one just before, as the devnet bootstraps)."""
    node = cluster.hosts[index]
    node.start()
    if index == 0:
        return
    if chain:
        peers = [index - 1]
    elif index <= 64:
        peers = cluster.rng.sample(range(index), min(links, index))
    else:
        peers = [cluster.rng.randrange(index) for _ in range(links)]
    for peer in sorted(set(peers)):
        cluster.connect(index, peer)
    # Once the bootstrap dial is through, the routing-table refresh (Kademlia self-lookup).
    first = peers[0]
    cluster.loop.later(
        HANDSHAKE_RTTS * 2 * cluster.net.base_delay(index, first),
        functools.partial(cluster.kad_refresh, index),
    )
