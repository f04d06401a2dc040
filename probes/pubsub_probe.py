"""The active PubSub probe: peers named in a probe answer it over a direct stream.

Why peers must answer: a node's own publish is delivered to its own subscription at once
and never comes back from the network, so the reference's "loopback" passes on a node with
no peers (py-libp2p notes, "GossipSub"). Here the origin names up to ``k`` (default 3) of
its connected peers, picked at random, and only those answer. Answers travel on a direct
libp2p stream to the origin, the fastest of the answer paths the notes measured (116 ms
against 464-541 ms over GossipSub at 10 nodes), and they cost nobody else a delivery: each
probe costs one publish plus at most ``k`` streams whatever the cluster size.

The modules of the probe: its wire format (:mod:`probes.probe_wire`), the responder every
node runs (:mod:`probes.probe_responder`, with the rate limits of :mod:`probes.rate_limit`),
and the direct link the answers travel on (:class:`probes.ports.DirectLink`; real in
``adapters.libp2p_link``, fake in :mod:`probes.memory_link`). This one is the origin's
side: it names the responders, publishes, and collects the answers.

Peers that are not mesh nodes (issue 14: CHORUS's Go and JS libp2p peers) connect, may
subscribe to the probe topic, and never answer. The origin names only peers whose identify
lists :data:`ACK_PROTOCOL`, which every mesh node registers (``adapters.libp2p_link``'s
``probe_for_node`` builds the probe with the responder), so they are never named and
never counted as silent. A node whose peers are all of that kind reports so as a warning
(:meth:`ProbeOutcome.result`). Identify is the peer's word: a hostile peer may claim the
protocol and stay silent, which is the silent named peer of before (with ``wanted``,
members are named first), and its protocol list is read only up to
``adapters.libp2p_link.MAX_PEER_PROTOCOLS`` entries.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from mesh.model import CheckResult, HealthCheck
from mesh.wire_level import COMPACT
from probes.last_outcome import LastOutcome
from probes.ports import DirectLink, PubSub
from probes.probe_wire import (
    ACK_PROTOCOL,
    MAX_PAYLOAD_BYTES,
    MAX_RESPONDERS,
    TOPIC,
    WIRE_VERSION,
    ProbeMessage,
    WireError,
    decode_ack,
)

__all__ = [
    "ACTIVE_PUBSUB_CHECK",
    "DEFAULT_GRACE",
    "DEFAULT_PAYLOAD_BYTES",
    "DEFAULT_RESPONDERS",
    "DEFAULT_WAIT",
    "ProbeOutcome",
    "PubSubProbe",
    "active_pubsub_check",
]

ACTIVE_PUBSUB_CHECK = "pubsub-active-probe"

DEFAULT_RESPONDERS = 3  # k: answers per probe; the cost of one probe does not grow with N
DEFAULT_PAYLOAD_BYTES = 32
DEFAULT_WAIT = 10.0  # seconds; the reference's "wait for message receipt (max 10 seconds)"
# Once one correct answer is in, the other named peers get this much longer: a dead peer
# that is not yet noticed as disconnected should not hold every probe for the full wait.
DEFAULT_GRACE = 1.0

# The reference's Active PubSub Check properties.
ACTIVE_INTERVAL = 60.0
ACTIVE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One probe's result. ``latency`` is seconds from publish to the first correct answer."""

    named: tuple[str, ...]
    answered: tuple[str, ...]  # named peers that answered with the right hash, in order
    corrupted: tuple[str, ...]  # named peers that answered with a wrong hash
    latency: float | None
    wait: float
    connected: int  # connected peers when the probe started
    # Of those, peers whose identify does not list ACK_PROTOCOL: not mesh nodes (or not
    # identified yet), so never named.
    non_mesh: int = 0

    @property
    def healthy(self) -> bool:
        return bool(self.answered)

    @property
    def no_mesh_peers(self) -> bool:
        """Connected, but only to peers that are not mesh nodes: nobody to ask."""
        return self.connected > 0 and self.non_mesh >= self.connected

    @property
    def message(self) -> str:
        if not self.named and not self.connected:
            return "no connected peers to answer the probe"
        if self.no_mesh_peers:
            return f"no peer speaks {ACK_PROTOCOL}: {_not_mesh_nodes(self.non_mesh)}"
        if not self.named:
            mesh = self.connected - self.non_mesh
            text = f"none of {mesh} connected peers subscribes to {TOPIC}"
            return f"{text}; {_not_mesh_nodes(self.non_mesh)}" if self.non_mesh else text
        bad = ""
        if self.corrupted:
            bad = (
                f"{len(self.corrupted)} named peer(s) answered with a corrupted payload hash:"
                f" {', '.join(self.corrupted)}"
            )
        if self.answered:
            assert self.latency is not None
            text = (
                f"{len(self.answered)} of {len(self.named)} named peers answered;"
                f" first in {self.latency * 1000:.0f} ms"
            )
            return f"{text}; {bad}" if bad else text
        if bad:
            return f"{bad}; no correct answer within {self.wait:g}s"
        return f"no answer from {len(self.named)} named peers within {self.wait:g}s"

    def details(self) -> dict[str, Any]:
        return {
            "latency_ms": None if self.latency is None else self.latency * 1000,
            "responders_named": len(self.named),
            "connected_peers": self.connected,
            "non_mesh_peers": self.non_mesh,
            "responders_answered": list(self.answered),
            "corrupted": len(self.corrupted),
        }

    def result(self) -> CheckResult:
        if self.no_mesh_peers:
            # A warning: failed, degraded, never unhealthy (mesh.status). Not a pass: the
            # probe exists to prove the network carries our messages and nobody could be
            # asked, and a probe that passes on an isolated node is the defect the notes
            # warn of ("GossipSub"). Not a plain failure either: the connections work,
            # the peers just run other software; readiness turning 503, or a critical
            # check ending the node, would fix nothing. A node with no peers at all still
            # fails plainly.
            return CheckResult.warn(self.message, **self.details())
        return CheckResult(healthy=self.healthy, message=self.message, details=self.details())


def _not_mesh_nodes(count: int) -> str:
    if count == 1:
        return "1 connected peer is not a mesh node"
    return f"{count} connected peers are not mesh nodes"


@dataclass
class _Pending:
    named: frozenset[str]
    expected_sha256: str
    started: float
    answered: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    first_ok: float | None = None
    all_in: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None


class PubSubProbe:
    """Publishes probes and collects the named peers' answers.

    Registers its answer handler on ``link`` when built; only the peers a pending probe
    named, and that have not answered it yet, may open an answer stream
    (:meth:`expects`). Several probes may run at once (the active and the enhanced check
    share one instance); nonces keep them apart.

    With ``wanted`` (the node's: "a member of the cluster view", when an admission policy
    is on), wanted peers are named first and others only where too few wanted peers
    subscribe: strangers that subscribe to the probe topic by the dozen would otherwise be
    named most of the time, and never answer.

    ``wire_level`` (the node's: what a member's digest says it reads, mesh/wire_level.py)
    picks the probe's wire version: 2 when every named peer reads it, else 1. Without it,
    always 2.
    """

    def __init__(
        self,
        pubsub: PubSub,
        link: DirectLink,
        *,
        responders: int = DEFAULT_RESPONDERS,
        payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
        wait: float = DEFAULT_WAIT,
        grace: float = DEFAULT_GRACE,
        topic_peers: Callable[[], Iterable[str]] | None = None,
        wanted: Callable[[str], bool] | None = None,
        wire_level: Callable[[str], int] | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= responders <= MAX_RESPONDERS:
            raise ValueError(f"responders must be in 1..{MAX_RESPONDERS}, got {responders}")
        if not 1 <= payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload_bytes must be in 1..{MAX_PAYLOAD_BYTES}")
        self._pubsub = pubsub
        self.link = link
        self.responders = responders
        self._payload_bytes = payload_bytes
        self.wait = wait
        self._grace = grace
        # Peers known to subscribe to TOPIC (GossipSub's peer_topics). A non-mesh peer
        # may subscribe too (a CHORUS Go peer watching our topics): run() also requires
        # the answer protocol.
        self._topic_peers = topic_peers
        self._wanted = wanted
        self._wire_level = wire_level
        self._rng = rng or random.Random()
        self._wall = wall_clock
        self._pending: dict[str, _Pending] = {}
        # Answers from named peers that are malformed, name an unknown nonce or repeat
        # one; answers from anyone else never get this far (LibP2PLink counts them).
        self.unexpected_answers = 0
        self.last = LastOutcome[ProbeOutcome]()  # what the active check may read
        link.set_handler(ACK_PROTOCOL, self._on_answer, expected=self.expects)

    def expects(self, peer: str) -> bool:
        """Whether a pending probe named ``peer`` and still waits for its answer."""
        return any(
            peer in p.named and peer not in p.answered and peer not in p.corrupted
            for p in self._pending.values()
        )

    def _is_mesh_node(self, peer: str) -> bool:
        if self.link.speaks(peer, ACK_PROTOCOL):
            return True
        try:
            return self._wanted is not None and bool(self._wanted(peer))
        except Exception:  # the view's predicate must not end a probe
            return False

    def _pick(self, peers: list[str]) -> tuple[str, ...]:
        """Up to ``responders`` of ``peers`` (sorted) at random, wanted peers first."""
        if self._wanted is None:
            return tuple(self._rng.sample(peers, min(self.responders, len(peers))))
        wanted = [p for p in peers if self._wanted(p)]
        named = self._rng.sample(wanted, min(self.responders, len(wanted)))
        others = sorted(set(peers).difference(wanted))
        named += self._rng.sample(others, min(self.responders - len(named), len(others)))
        return tuple(named)

    def _version_for(self, named: tuple[str, ...]) -> int:
        level = self._wire_level
        if level is None or all(level(peer) >= COMPACT for peer in named):
            return WIRE_VERSION
        return 1

    async def run(self, *, wait: float | None = None) -> ProbeOutcome:
        """One probe; ``wait`` overrides the instance's wait for answers (seconds). Its
        outcome is also kept in ``last``."""
        return self.last.put(await self._probe(self.wait if wait is None else wait))

    async def _probe(self, wait: float) -> ProbeOutcome:
        connected = set(self.link.connected_peers()) - {self.link.peer_id}
        # Only mesh nodes answer: a peer that does not speak the answer protocol would be
        # named, never answer, and count as a silent peer against the network (issue 14).
        # A member of our signed view is one whatever identify says: a peerstore evicts
        # its oldest entries (1,000 peers in py-libp2p) when minted identities flood it,
        # and identify runs once per connection.
        mesh = {p for p in connected if self._is_mesh_node(p)}
        non_mesh = len(connected) - len(mesh)
        peers = sorted(mesh)
        if self._topic_peers is not None:
            peers = sorted(mesh.intersection(self._topic_peers()))
        if not peers:
            return ProbeOutcome((), (), (), None, wait, len(connected), non_mesh)
        named = self._pick(peers)
        payload = secrets.token_bytes(self._payload_bytes)
        digest = hashlib.sha256(payload).hexdigest()
        probe = ProbeMessage(
            nonce=secrets.token_hex(16),
            origin=self.link.peer_id,
            sent_at=self._wall(),
            payload=payload,
            payload_sha256=digest,
            responders=named,
        )
        pending = _Pending(frozenset(named), digest, trio.current_time())
        self._pending[probe.nonce] = pending
        try:
            with trio.move_on_after(wait) as scope:
                pending.scope = scope  # the first correct answer shortens it to the grace
                await self._pubsub.publish(TOPIC, probe.encode(self._version_for(named)))
                await pending.all_in.wait()
        finally:
            del self._pending[probe.nonce]
        latency = None if pending.first_ok is None else pending.first_ok - pending.started
        return ProbeOutcome(
            named,
            tuple(pending.answered),
            tuple(pending.corrupted),
            latency,
            wait,
            len(connected),
            non_mesh,
        )

    async def _on_answer(self, sender: str, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        try:
            ack = decode_ack(data)
        except WireError:
            self.unexpected_answers += 1
            return
        pending = self._pending.get(ack.nonce)
        if (
            pending is None
            or sender not in pending.named
            or sender in pending.answered
            or sender in pending.corrupted
        ):
            self.unexpected_answers += 1
            return
        if ack.payload_sha256 == pending.expected_sha256:
            pending.answered.append(sender)
            if pending.first_ok is None:
                pending.first_ok = trio.current_time()
                if pending.scope is not None:
                    pending.scope.deadline = min(
                        pending.scope.deadline, pending.first_ok + self._grace
                    )
        else:
            pending.corrupted.append(sender)
        if len(pending.answered) + len(pending.corrupted) == len(pending.named):
            pending.all_in.set()


def active_pubsub_check(probe: PubSubProbe, *, name: str = ACTIVE_PUBSUB_CHECK) -> HealthCheck:
    """The reference's Active PubSub Check: non-critical, every 60 s, 15 s timeout.

    Healthy when at least one named peer answered with the right hash; a warning (failed,
    degraded) when every connected peer is a non-mesh node (:meth:`ProbeOutcome.result`).
    """

    async def check_pubsub() -> CheckResult:
        # The enhanced check's probe when fresh enough (probe.last.max_age): the same path,
        # proven seconds ago, need not be probed again.
        outcome = probe.last.fresh()
        return (outcome if outcome is not None else await probe.run()).result()

    return HealthCheck(
        name=name,
        checker=check_pubsub,
        description=f"Named peers answer a probe on {TOPIC}",
        interval=ACTIVE_INTERVAL,
        timeout=ACTIVE_TIMEOUT,
        critical=False,
        component="pubsub",
    )
