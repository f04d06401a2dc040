"""A light node of the sampled mode (``Settings.sample``): a member without a view.

A ``SimNode``'s ``ClusterView`` holds every member (~3 MB at 1,000): too much at 10,000
nodes. A sampled run measures ``S`` full nodes; the others are ``LightNode``s, doing what a
full node sees of a member with the node's own pure pieces, in ``SimNode``'s order: route
GossipSub (``overlay.Router``); publish digests (``Sequencer``, real keys) as
``PublishDecisions`` says and refute a suspicion of themselves (rule 5); ping linked peers
on ``adapters.ping_schedule``'s wheel and, on a failed ping, a closed connection or a
refused dial-back, publish a ``SuspectNotice`` against the last ``Version`` heard of the
peer, ``refused`` where the view would (rules 6, 7); crash, freeze, starve, leave.

Simplifications, the model's and not the node's:

- No view: no silence timeouts, no suspicion timers (deaths, a lone suspicion's second
  notice), election, meetings, self-doubt, ``LinkTiming``, pulls or anti-entropy. A pull is
  answered with an empty page (as when the summaries match), so joins are not sampled.
- Validation: signed (the shared ``EnvelopeCache``), decodable and fresh (``decode_gossip``),
  within the signer's ``SignerBudget``, every signer a member (an admission policy certifies
  every simulated node). Replays: GossipSub's seen cache; of linked peers, the last Version.
- Memory O(links): only linked peers are remembered (last Version, local health, notices
  heard of them). Our suspicion of a peer goes out once per Version unless its originator
  and K confirmations are heard (rule 6), our refused dial once more as a witness while
  fewer than ``refusal_witnesses`` are heard (rule 7).
- ``n`` (refresh interval, publish budget, K) is the cluster's size, not a live count.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from adapters.gossip_tuning import GossipTuning
from adapters.p2p_config import P2PConfig
from adapters.ping_schedule import next_tick, rotation
from adapters.publish_decisions import PublishDecisions, Said
from adapters.recheck_backoff import RecheckBackoff
from adapters.signer_budget import SignerBudget
from devnet.simulator.events import Timer
from devnet.simulator.host_clock import HostClock
from devnet.simulator.kernel import Kernel, Life
from devnet.simulator.keys import Identity
from devnet.simulator.overlay import GossipParams, Packet, Router
from devnet.simulator.publisher import COMPONENTS, URGENT_KINDS
from mesh.cluster_config import ClusterConfig
from mesh.cluster_events import PublishSuspect
from mesh.digest import decode_gossip, encode_gossip
from mesh.messages import HealthDigest, SuspectNotice, Version, ViewSnapshot
from mesh.model import Status
from mesh.rejection import Rejection, RejectReason
from mesh.sequencer import Sequencer
from mesh.snapshot_codec import PullAsk, encode_snapshot
from mesh.suspicion_timing import expected_confirmations
from mesh.wire_bounds import to_ms
from mesh.wire_level import COMPACT, WIRE_LEVEL
from probes.rate_limit import TokenBucket

__all__ = ["Heard", "LightNode"]


class Heard(NamedTuple):  # what a linked peer last said of itself on the topic
    version: Version
    health: int = 0  # its local health: a starved peer's pings get more time
    left: bool = False  # its leave notice: never suspected again (rule 10)


@dataclass(slots=True)
class Suspected:  # a suspicion of a linked peer's last Version, as we heard of it
    observers: set[str] = field(default_factory=set)
    witnesses: set[str] = field(default_factory=set)  # observers whose dial was refused
    said_refused: bool = False


class LightNode(HostClock):
    def __init__(
        self,
        index: int,
        cluster: Kernel,
        ident: Identity,
        config: ClusterConfig,
        tuning: GossipTuning,
        params: GossipParams,
        rng: random.Random,
        ping_interval: float,
        ping_timeout: float,
        n: int,
    ) -> None:
        self.index = index
        self.cluster = cluster
        self.ident = ident
        self.peer_id = ident.peer_id
        self.config = config
        self.tuning = tuning
        self.rng = rng
        self.n = n
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # A peer new to our mesh hears from us now (PublishDecisions.note_mesh).
        self.router = Router(
            index, cluster.wire, params, rng, self._validate, lambda _: self._wake()
        )
        self.life = Life.DOWN
        self.lag = 0.0
        self.sequencer: Sequencer | None = None
        self.connected: set[int] = set()
        self.met: set[int] = set()
        self.backlog: list[Callable[[], None]] = []
        self.rejected: dict[str, int] = {}
        self.heard: dict[int, Heard] = {}  # linked peers only: bounded by our links
        self.suspected: dict[int, Suspected] = {}  # of heard[peer].version; linked only
        self._checked: dict[int, float] = {}
        self._rechecks = RecheckBackoff(base=tuning.recheck_base, ceiling=tuning.recheck_ceiling)
        self._dials = TokenBucket(tuning.dialback_rate, tuning.dialback_burst, 0.0)
        self._signers = SignerBudget(
            tuning,
            certified=config.certified_members,
            max_keys=config.max_members,
            newcomer_burst=config.join_burst,
        )
        # Our publishing: the adapter's decisions, what we published by kind, our last
        # digest's Version (what a suspicion of us is judged against, rule 5).
        self.decisions = PublishDecisions(tuning, config)
        self.published: Counter[str] = Counter()
        self.stopped = False
        self.own: Version | None = None
        self._timer: Timer | None = None

    def start(self) -> None:
        self.life = Life.UP
        self.start_clock()
        self._due()
        self.run_timers()

    def start_clock(self) -> None:
        self.sequencer = Sequencer(self.peer_id, math.floor(self.wall * 1000.0))

    def run_timers(self, *, refresh_phase: bool = False) -> None:
        self.later(self.rng.uniform(0, self.router.params.heartbeat), self._heartbeat)
        self._ping_next(None)
        self.rng.random()  # SimNode's anti-entropy draw: the refresh phase it would have had
        if refresh_phase:
            interval = self.config.refresh_interval(self.n)
            last = self.now - self.rng.uniform(0, interval)
            self.decisions.sent(last, self._said())
            self._schedule(last + interval - self.now)

    def set_lag(self, lag: float) -> None:  # starved: our digest says so at once
        self.lag = lag
        self._wake()

    def leave(self) -> None:
        assert self.sequencer is not None
        notice = self.sequencer.leave(self.wall)
        self.stopped = True
        self.decisions.stop()
        self._send(encode_gossip(notice), "leave")
        grace = self.tuning.leave_flush_grace + 0.01
        self.cluster.loop.later(grace, lambda: self.cluster.exit(self.index, Life.LEFT))

    def on_connected(self, peer: int) -> None:
        if peer not in self.connected:
            self.connected.add(peer)
            self.met.add(peer)
            self.router.peer_connected(peer)

    def on_disconnected(self, peer: int) -> None:
        if peer not in self.connected:
            return
        self.connected.discard(peer)
        self.decisions.forget(self.cluster.peer_id(peer))
        self.router.peer_lost(peer)
        self._observe(peer)  # the view's DISCONNECTED: a suspicion, then a dial-back
        self._check(peer, urgent=True)

    def wired(self, peer: int) -> None:  # a warm start's connection (Cluster.wire_up)
        self.decisions.announced.add(self.cluster.peer_id(peer))
        self.on_connected(peer)

    def _heartbeat(self) -> None:
        self.router.heartbeat()
        self.later(self.router.params.heartbeat, self._heartbeat)

    def serve(self, client: int, ask: PullAsk) -> bytes:  # an empty page (see above)
        return encode_snapshot(ViewSnapshot(self.peer_id, to_ms(self.wall), ()))

    def _validate(self, packet: Packet) -> bool:
        envelope = self.cluster.verifier.open(packet.raw)
        if envelope is None:
            return self._reject(RejectReason.FORGED)
        decoded = decode_gossip(envelope.data, envelope.signer, self.wall, config=self.config)
        if isinstance(decoded, Rejection):
            return self._reject(decoded.reason)
        if not self._signers.allow(envelope.signer, member=True, now=self.now):
            return self._reject(RejectReason.FLOODED)
        if isinstance(decoded, SuspectNotice):
            self._heard_notice(decoded)
            return True
        peer = self.cluster.index_of(decoded.node_id)
        if peer not in self.met:
            return True  # nothing kept of members we hold no link to
        last = self.heard.get(peer)
        if last is not None and decoded.key <= last.version:
            self._reject(RejectReason.REPLAYED)  # as the view: counted, still forwarded
            return True
        # A newer statement answers every suspicion of the older one (rule 4).
        self.suspected.pop(peer, None)
        health = decoded.local_health if isinstance(decoded, HealthDigest) else 0
        self.heard[peer] = Heard(decoded.key, health, not isinstance(decoded, HealthDigest))
        return True

    def _reject(self, reason: RejectReason) -> bool:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        return False

    def _heard_notice(self, notice: SuspectNotice) -> None:
        if notice.suspect_id == self.peer_id:
            self._refute(notice.basis)
            return
        peer = self.cluster.index_of(notice.suspect_id)
        last = self.heard.get(peer)
        # Rule 3: older evidence is ignored, newer held at what we heard. Linked peers only.
        if last is None or last.left or notice.basis < last.version:
            return
        suspected = self.suspected.setdefault(peer, Suspected())
        suspected.observers.add(notice.observer_id)
        if notice.refused and peer not in self.connected:
            suspected.witnesses.add(notice.observer_id)
        self._check(peer)  # as SimNode: a suspicion of a peer we can reach is checked

    def _refute(self, basis: Version) -> None:
        """Rule 5, as ``Suspicions._refute``, against our last published digest."""
        said, sequencer = self.own, self.sequencer
        if self.stopped or said is None or sequencer is None:
            return
        if basis.start_time_ms < said.start_time_ms:
            return  # an earlier life of ours
        basis = min(basis, said)  # a lie beyond what we said is refuted by one
        if basis.incarnation < sequencer.incarnation:
            return  # already refuted
        sequencer.refute(sequencer.incarnation + 1)
        self.decisions.refute()
        self._wake()

    def _observe(self, peer: int, *, refused: bool = False) -> None:
        last = self.heard.get(peer)
        if last is None or last.left or self.life is not Life.UP:
            return  # rule 2 (no digest of it), rule 10 (it left)
        suspected = self.suspected.setdefault(peer, Suspected())
        says_refused = (
            refused
            and self.config.refusal_witnesses > 0
            and not suspected.said_refused
            and len(suspected.witnesses) < self.config.refusal_witnesses
        )
        if self.peer_id in suspected.observers:
            if says_refused:  # our kernel's answer, now a witness's notice (rule 7)
                suspected.said_refused = True
                self._queue(peer, last.version, refused=True)
            return
        suspected.said_refused = says_refused
        wanted = expected_confirmations(self.n, self.config.suspicion_confirmations)
        if says_refused or len(suspected.observers) < wanted + 1:  # rule 6: unless enough
            self._queue(peer, last.version, refused=says_refused)
        suspected.observers.add(self.peer_id)
        self._check(peer)  # the view's transition to SUSPECT

    def _check(self, peer: int, *, urgent: bool = False) -> None:
        if peer not in self.suspected or self.life is not Life.UP:
            return
        last = self._checked.get(peer, -math.inf)
        if not urgent and self.now - last < self.tuning.dialback_cooldown:
            return
        self._checked[peer] = self.now
        if peer not in self.connected:
            self._dial_back(peer)
            return
        name = self.cluster.peer_id(peer)
        if not self._rechecks.allows(name, self.now):
            return

        def checked(ok: bool) -> None:
            if ok:
                self._rechecks.answered(name)
            else:
                self._rechecks.missed(name, self.now)
                self._dial_back(peer)

        self._ping(peer, checked)

    def _dial_back(self, peer: int) -> None:
        # A light node keeps state only of peers it met (the node also dials a certified
        # member it never met, adapters/suspect_checks.py; here there is none).
        if peer in self.met and self._dials.take(self.now):
            self.cluster.dial(self.index, peer, self.tuning.dialback_timeout, self._dialled)

    def _dialled(self, peer: int, refused: bool) -> None:
        # The view ignores a refusal while a connection to the peer looks open.
        if refused and peer not in self.connected:
            self._observe(peer, refused=True)

    def _ping_next(self, tick: int | None) -> None:
        if tick is not None:
            names = {self.cluster.peer_id(peer): peer for peer in self.connected}
            if turn := rotation(tick, self.peer_id, names):
                peer = names[turn[0]]
                self._ping(peer, lambda ok: self._pinged(peer, ok))
        after = next_tick(self.wall, self.ping_interval, tick, 1)
        self.later(max(0.0, after * self.ping_interval - self.wall), lambda: self._ping_next(after))

    def _ping(self, peer: int, done: Callable[[bool], None]) -> None:
        last = self.heard.get(peer)
        patient = last is not None and last.health > 0  # LinkPinger.patient
        timeout = self.ping_timeout * (P2PConfig.ping_patient_factor if patient else 1)
        early = None if patient else P2PConfig.ping_early_after
        self.cluster.ping(self.index, peer, timeout, done, early, P2PConfig.ping_clean_for)

    def _pinged(self, peer: int, answered: bool) -> None:
        # Failures while starved are ignored (LinkPinger.starved; the view's quiet rule 8).
        if not answered and self.lag == 0 and peer in self.connected:
            self._observe(peer)

    def _wake(self) -> None:
        timer = self._timer
        if timer is None or timer.cancelled or timer.at > self.now:
            self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.later(delay, self._due)

    def _queue(self, peer: int, basis: Version, refused: bool = False) -> None:
        event = PublishSuspect(self.cluster.peer_id(peer), basis, refused=refused)
        if not self.stopped and self.decisions.queue_suspect(event) == "queued":
            self._wake()

    def _due(self) -> None:
        """``Publisher.due``: a refutation or our digest if due, then queued suspicions."""
        self._timer = None
        decisions, sequencer = self.decisions, self.sequencer
        if self.stopped or sequencer is None:
            return
        if decisions.digest_due(self.now, self.n, self._mesh, self._said):
            kind = "refutation" if decisions.refuting else "digest"
            digest = self.next_digest()
            decisions.sent(self.now, self._said())
            self._send(encode_gossip(digest, compact=WIRE_LEVEL >= COMPACT), kind)
        while not self.stopped and (event := decisions.next_suspect(self.now)) is not None:
            notice = sequencer.suspect(event.suspect, event.basis, self.wall, refused=event.refused)
            self._send(encode_gossip(notice), "witness" if event.refused else "suspect")
        delay = self.tuning.publish_poll  # waiting for a token or refute_interval
        if not (decisions.refuting or decisions.announce or decisions.suspects):
            assert decisions.last_sent is not None
            refresh = decisions.last_sent + self.config.refresh_interval(self.n) - self.now
            delay = max(delay, refresh)
        self._schedule(delay)

    def _mesh(self) -> set[str]:
        return {self.cluster.peer_id(peer) for peer in self.router.mesh}

    def _said(self) -> Said:
        """``Publisher.said``: a healthy node's, at a data centre's addresses."""
        i = self.index
        host = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        addrs = (f"/ip4/{host}/tcp/9000/p2p/{self.peer_id}",)
        health = self.config.awareness_max - 1 if self.lag > 0 else 0
        return Said(Status.HEALTHY, 0.97, COMPONENTS, f"http://{host}:8080", addrs, health)

    def next_digest(self) -> HealthDigest:
        assert self.sequencer is not None
        said = self._said()
        # Said's fields are the digest's arguments, by name; version as SimNode's.
        fields = {f.name: getattr(said, f.name) for f in dataclasses.fields(said)}
        digest = self.sequencer.digest(self.wall, version="0.9.0", **fields)
        self.own = digest.key
        return digest

    def _send(self, data: bytes, kind: str) -> None:
        self.published[kind] += 1
        packet = self.cluster.packet(self.index, self.ident.seal(data))
        self.router.publish(packet, flood=kind in URGENT_KINDS)
