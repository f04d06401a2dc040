"""One libp2p node's settings (:class:`P2PConfig`) and the edge's error (:class:`P2PError`).

Every field carries its unit, default and the measurement behind it; workarounds cite
/work/shared/reference/py-libp2p-notes.md ("notes") by section. Addresses are parsed when
the config is made, so a typo fails at start, not at the first dial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import multiaddr  # type: ignore[import-untyped]  # ships no py.typed
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11

from adapters.dht import DEFAULT_MAX_VALUE_SIZE
from adapters.dht_record_guard import DEFAULT_RECORD_TTL

__all__ = ["GOSSIPSUB_PROTOCOLS", "P2PConfig", "P2PError", "parse_peer_addr"]

# Standard ids only, newest first: CHORUS peers are go-libp2p (notes, "Other
# implementations"). py-libp2p's /meshsub/1.3.0+ extensions are left out on purpose.
GOSSIPSUB_PROTOCOLS: tuple[TProtocol, ...] = (PROTOCOL_ID_V11, PROTOCOL_ID)


class P2PError(Exception):
    """The libp2p edge cannot start or do what was asked (bad config, corrupt key file)."""


# The floor of measured ping timeouts as tried (P2PConfig.ping_timeout_floor).
MEASURED_PING_FLOOR = 0.5


@dataclass(frozen=True)
class P2PConfig:
    """Everything one node needs. Times in seconds, sizes in bytes."""

    # Ed25519 identity, libp2p protobuf format. Created 0600 on first start, then reused
    # so the peer id survives restarts.
    key_file: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9000  # 0 = ephemeral (tests, devnet); read the real one back
    # /ip4/<ip>/tcp/<port>/p2p/<peer id>; parsed up front so a typo fails at start.
    bootstrap: tuple[str, ...] = ()
    # Bounded bootstrap: per peer at most this many dials, delays doubling from the
    # initial backoff up to the cap, and all of it within the deadline.
    bootstrap_max_attempts: int = 5
    bootstrap_initial_backoff: float = 0.2
    bootstrap_max_backoff: float = 5.0
    bootstrap_deadline: float = 30.0
    dial_timeout: float = 5.0
    # After bootstrap, a bootstrap peer we are not connected to (it was frozen, restarted,
    # or a failed ping aborted our connection) is dialled again, first after
    # redial_interval, backing off to redial_max_backoff while it stays unreachable. Without
    # this, a peer that returns is never reconnected: nothing else re-dials.
    redial_interval: float = 2.0
    redial_max_backoff: float = 30.0

    # GossipSub. py-libp2p's default heartbeat is 120 s (notes, "Building a node"): a mesh
    # would take minutes to form. Every message costs each node one delivery per mesh peer
    # (D), and py-libp2p spends about a millisecond of Python per RPC: with go-libp2p's
    # D=6 (Dlo=5, Dhi=12) a 10-node devnet spent ~10 % of a core per node on 4 digests a
    # second. D=4 keeps two spare paths per node and cut that by a third (2026-11-28).
    gossip_heartbeat_interval: float = 1.0
    # D=3 (Dlo=2, Dhi=4) cut the digest copies a node sends by about a third at 10 idle
    # nodes (devnet/cost_breakdown.py, 2026-12-02), but full meshes of 4 pruned newcomers
    # and a node back from starvation, which then heard and was heard by nobody for a
    # minute of PRUNE backoff (tests/sim: test_starved_node_..., test_rogue, 2026-12-02).
    gossip_degree: int = 4
    gossip_degree_low: int = 3
    gossip_degree_high: int = 6
    # Offered GossipSub versions, best first. Not 1.2: py-libp2p 0.8.1 sends an IDONTWANT
    # to every mesh peer for every message it receives, where go-libp2p does so only above
    # 1 KiB. Our digests are ~400 bytes, so 1.2 only doubled the RPCs (10 % -> 6 % of a
    # core per node at 10 nodes without it). Peers offering 1.2 settle on 1.1.
    gossip_protocols: tuple[str, ...] = GOSSIPSUB_PROTOCOLS
    # py-libp2p stops forwarding (but still delivers) messages beyond this many a second
    # per forwarding peer and topic, and penalizes the forwarder's score. A forwarder
    # relays the whole topic, so its default of 10 capped the cluster's topic at 10
    # messages a second: at 20 nodes a burst of suspicions passed it, digests stopped
    # spreading, silence raised more suspicions, and the devnet never converged
    # (2026-11-28). The gossip service bounds each signer instead (GossipTuning.signer_rate).
    gossip_forward_limit: float = 200.0
    # py-libp2p's "adaptive gossip" stretches the heartbeat to 30-60 s whenever its own
    # network-health estimate drops (gossipsub.py, _adapt_heartbeat_parameters): a loaded
    # mesh would stop repairing itself exactly when it needs to. Off.
    gossip_adaptive: bool = False
    # Bounds one inbound RPC frame. py-libp2p's default is 1 MiB, and a 1 MiB frame of
    # tiny messages stalled a node for 5.5 s (notes, "Hostile input"). Our digests are
    # well under 4 KiB, so 64 KiB is many messages' worth.
    max_inbound_rpc_size: int = 64 * 1024

    # Liveness pings (adapters/pinger.py, instead of py-libp2p's health monitor, whose
    # cost grows with n squared): one ping every ping_interval to the next connected peer.
    # A failure is reported to the cluster view, which suspects the peer; the suspicion is
    # gossiped, and confirmed, refuted or timed out like any other. The timeout must
    # tolerate a busy peer and a lossy link: 1 s failed healthy pings on a loaded 10-node
    # devnet (make bench, 2026-11-28), and with a 1.5 s suspicion it made live nodes dead
    # under 20 % packet loss (2026-12-02).
    # abort_connection_on_ping_failure also closes the connection, as py-libp2p's monitor
    # did; off, because on a loaded machine every missed ping then cost a reconnect
    # (Noise handshake, identify, GossipSub and DHT state), which made more pings miss: a
    # 20-node devnet never converged with it. A killed peer's connection is
    # closed by its kernel anyway, and a frozen one's stays open until it wakes up.
    enable_link_pings: bool = True
    ping_interval: float = 0.5
    ping_timeout: float = 2.0
    abort_connection_on_ping_failure: bool = False
    # One long-lived ping stream per connection (LinkPinger.reuse_streams): a new stream
    # per ping cost ~20 TCP segments per ping, a third of an idle node's packets.
    ping_reuse_streams: bool = True
    # Seconds our responder keeps an inbound ping stream without a ping (py-libp2p's and
    # go-libp2p's: 10). Longer than the round robin's return to a peer, ping_interval
    # times n - 1, up to 60 peers, so kept streams stay kept (adapters/ping_responder.py).
    ping_stream_idle: float = 60.0
    # None (the default in every profile): every ping waits ping_timeout. A number: each
    # peer's timeout is measured from its answers (adapters/link_timing.py: srtt + 4
    # rttvar, as TCP's), between this floor and ping_timeout, so a frozen peer on a quiet
    # network is failed at the floor; and answers later than ping_slow_answer (200 ms,
    # TCP's least retransmit timeout: any retransmit) stretch the cluster view's timeouts
    # (ClusterView.set_network_health). Not on by default: with a 0.5 s floor and a 1.4 s
    # suspicion, 5-node bench clusters found a frozen node in 2.3-2.5 s, but 20 nodes
    # starting on two cores failed pings at the floor by the hundred and never agreed
    # within 60 s (make bench, 2026-12-03). MEASURED_PING_FLOOR is the value tried.
    ping_timeout_floor: float | None = None
    ping_slow_answer: float = 0.2
    # True: each late answer (after ping_slow_answer) of a member's round-robin ping
    # stretches the cluster view's suspicion and silence timeouts by one more multiple
    # and each timely one takes one away (Lifeguard's awareness fed by probe outcomes,
    # adapters/link_timing.py, ClusterView.set_network_health), with or without measured
    # timeouts; not while our own loop lags. Off by default: on the bench (2026-12-04,
    # 20 nodes on two cores) every kill, restart and freeze loaded the nodes enough to
    # make answers late, so the very events we time stretched the timeouts: a freeze
    # was seen in 4.8-8.8 s instead of 2.5 s, a kill in 1.3-2.5 s instead of 0.7.
    # Measured timeouts (ping_timeout_floor) always feed the score.
    ping_network_awareness: bool = False
    # Seconds after which an unanswered ping fails when our kernel says the peer's kernel
    # acknowledged it, nothing waits unread on our side and the connection has not
    # retransmitted for ping_clean_for seconds (adapters/tcp_witness.py): the peer's
    # process is silent, not the link slow. None: every ping waits ping_timeout.
    # 0.75 s, not 0.5: an answer lost twice on the way back comes in its sender's second
    # retransmit, 0.6 s after the ping on any link (Linux's 200 ms minimum RTO, doubled),
    # and nothing on our side shows it. At 1 % loss one ping in about 10,000 failed so at
    # 0.5 s: in the simulator 7 false suspicions a minute at 300 idle nodes, each flooded
    # to every member with its refutation (idle traffic 2.6 KB/s a node at 1,000 nodes
    # against 0.7 before the early verdict). At 0.75 s: none; a freeze is found 0.25 s later.
    ping_early_after: float | None = 0.75
    ping_clean_for: float = 30.0
    # A peer whose digest says it is starved (HealthDigest.local_health) gets this many
    # times its ping timeout, and no early verdict. Its process answers late by its own
    # account; each ping it misses is a suspicion and a refutation flooded to every
    # member. With 5 % of 1,000 simulated nodes starved (timers late by 0.5 s on average)
    # a 2 s timeout raised 115 suspicions a minute, 11.9 KB/s of traffic a node (Session
    # 19). The cost: a member frozen while it says it is starved is failed later.
    ping_patient_factor: float = 2.0

    # py-libp2p's connection manager dials every peer in its peerstore (learned from
    # the DHT and identify) while it has fewer than 50 to 100 connections: a full mesh
    # for any mesh we run, and full meshes churn GossipSub (notes, "GossipSub"). Off by
    # default: topology comes from bootstrap and explicit connects (not in the notes;
    # source: libp2p/network/auto_connector.py).
    auto_connect: bool = False

    dht_max_value_size: int = DEFAULT_MAX_VALUE_SIZE
    dht_peer_timeout: float = 5.0
    # Seconds our namespace's records are kept (adapters/dht_record_guard.py,
    # DEFAULT_RECORD_TTL): must outlast the 3 newest probe records the replication check
    # re-reads.
    dht_record_ttl: float = DEFAULT_RECORD_TTL
    # Set the libp2p loggers to WARNING (Kademlia's to ERROR) on start (notes: noisy).
    quiet_libp2p_logs: bool = True
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_file", Path(self.key_file))
        object.__setattr__(self, "bootstrap", tuple(self.bootstrap))
        if not 0 <= self.listen_port <= 65535:
            raise P2PError(f"listen_port {self.listen_port} is not in 0..65535")
        if not 0 < self.gossip_degree_low <= self.gossip_degree <= self.gossip_degree_high:
            raise P2PError(
                "gossip degrees must satisfy 0 < low <= degree <= high, got "
                f"{self.gossip_degree_low}/{self.gossip_degree}/{self.gossip_degree_high}"
            )
        if self.bootstrap_max_attempts < 1:
            raise P2PError("bootstrap_max_attempts must be at least 1")
        for name in (
            "gossip_heartbeat_interval",
            "gossip_forward_limit",
            "ping_interval",
            "ping_timeout",
            "ping_slow_answer",
            "ping_clean_for",
            "ping_stream_idle",
            "dial_timeout",
            "bootstrap_deadline",
            "dht_peer_timeout",
            "dht_record_ttl",
            "redial_interval",
        ):
            if getattr(self, name) <= 0:
                raise P2PError(f"{name} must be positive, got {getattr(self, name)}")
        if not 1.0 <= self.ping_patient_factor <= 8.0:
            raise P2PError(f"ping_patient_factor must be in [1, 8], got {self.ping_patient_factor}")
        early = self.ping_early_after
        if early is not None and not 0 < early <= self.ping_timeout:
            raise P2PError(f"ping_early_after must be in (0, ping_timeout], got {early}")
        floor = self.ping_timeout_floor
        if floor is not None and not 0 < floor <= self.ping_timeout:
            raise P2PError(f"ping_timeout_floor must be in (0, ping_timeout], got {floor}")
        for addr in self.bootstrap:
            parse_peer_addr(addr, "bootstrap address")

    @property
    def listen_multiaddr(self) -> multiaddr.Multiaddr:
        proto = "ip6" if ":" in self.listen_host else "ip4"
        return multiaddr.Multiaddr(f"/{proto}/{self.listen_host}/tcp/{self.listen_port}")


def parse_peer_addr(addr: str, what: str) -> PeerInfo:
    """``addr`` as a peer id and its address; P2PError, naming it as ``what``, if it is not
    a ``/p2p/`` multiaddr."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise P2PError(
            f"{what} {addr!r} is not a multiaddr like /ip4/127.0.0.1/tcp/9001/p2p/<peer id>"
        ) from exc
