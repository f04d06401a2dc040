"""GossipService's check of a suspect (``SuspectChecks.verify``), with a fake node: which
evidence it gathers and what the view makes of it. The ping and the dial are the fake's and
a real TCP connect to 127.0.0.1; the timing rules themselves are tested in tests/mesh."""

from __future__ import annotations

import socket
from collections.abc import Callable

import trio
from prometheus_client import CollectorRegistry

from adapters.gossip import GossipService
from adapters.gossip_tuning import GossipTuning
from mesh.cluster_config import devnet
from mesh.manager import CheckManager
from mesh.messages import HealthDigest, MemberState

SELF, PEER = "Self1", "Peer2"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeNode:
    """What ``verify`` reads of its P2PNode: the out-of-turn ping's answer and where a
    dial-back may go (a port nothing listens on: a killed process's). ``during_ping`` runs
    while the ping is out (the connection closing meanwhile)."""

    def __init__(self, answer: bool | None, during_ping: Callable[[], None] = lambda: None):
        self.peer_id = SELF
        self.pinger = self
        self.timeout = 2.0  # the pinger's
        self.patient_factor = 2.0  # the pinger's, for a peer that says it is starved
        self.answer = answer
        self.during_ping = during_ping
        self.pinged: list[str] = []
        self.port = _closed_port()
        self.closed_by_peer = False  # what our kernel says of every connection to the peer

    def peer_closed(self, peer: str) -> bool:
        return self.closed_by_peer

    async def probe_now(self, peer: str) -> bool | None:
        self.pinged.append(peer)
        await trio.lowlevel.checkpoint()
        self.during_ping()
        return self.answer

    def dial_back_target(
        self, peer: str, advertised: object, *, certified: bool = False
    ) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def _service(node: FakeNode) -> GossipService:
    manager = CheckManager(node_id=SELF, version="t")
    service = GossipService(node, manager, devnet(), registry=CollectorRegistry())  # type: ignore[arg-type]
    now = trio.current_time()
    digest = HealthDigest(node_id=PEER, start_time_ms=1_000, seq=1, sent_at_ms=1_001)
    service.view.on_digest(digest, now)
    service.view.on_connected(PEER, now)
    service._connected.add(PEER)
    service.view.on_ping_failed(PEER, now)  # suspect, our connection still looking open
    assert _state(service) is MemberState.SUSPECT
    return service


def _state(service: GossipService) -> MemberState | None:
    member = service.view.member(PEER)
    return None if member is None else member.state


def _refused_at(service: GossipService) -> float | None:
    suspicion = service.view._roster.records[PEER].suspicion
    return None if suspicion is None else suspicion.refused_at


def _closes_during_ping(answer: bool) -> tuple[GossipService, FakeNode]:
    """A service whose ping out of turn gets ``answer`` while the connection closes."""
    holder: list[GossipService] = []

    def connection_closes() -> None:
        holder[0]._connected.discard(PEER)
        holder[0].view.on_disconnected(PEER, trio.current_time())

    node = FakeNode(answer=answer, during_ping=connection_closes)
    holder.append(_service(node))
    return holder[0], node


async def test_a_ping_unanswered_as_the_connection_closes_is_followed_by_a_dial_back() -> None:
    # A killed process: our ping out of turn goes out on a connection that still looks
    # open, the close comes while it waits, and the kernel then refuses our dial.
    service, node = _closes_during_ping(answer=False)
    await service._checks.verify(PEER)
    assert node.pinged == [PEER]
    assert _refused_at(service) is not None
    service.view.tick(trio.current_time() + devnet().refused_grace + 0.01)
    assert _state(service) is MemberState.DEAD


async def test_a_check_has_time_for_a_patient_ping_and_its_dial_back() -> None:
    # A suspect that says it is starved gets patient_factor times the ping timeout; the
    # check must outlast that ping, its stream's reset (1 s) and the dial-back after it,
    # or the check is cut off before its dial.
    node = FakeNode(answer=False)
    service = _service(node)
    needed = node.timeout * node.patient_factor + 1.0 + GossipTuning().dialback_timeout
    assert service._checks._verifier.timeout >= needed


async def test_an_answered_ping_settles_it_without_a_dial() -> None:
    # Were a dial made now, the view would take its refusal: none is.
    service, node = _closes_during_ping(answer=True)
    await service._checks.verify(PEER)
    assert node.pinged == [PEER] and _refused_at(service) is None


async def test_an_unanswered_ping_and_a_refused_dial_kill_though_our_close_never_came() -> None:
    # A killed process whose connection still looks open to us (its reset not yet read:
    # a starved loop, or a close py-libp2p never reports): our own ping on it went
    # unanswered and the kernel refused our dial, so the open-looking link is no evidence
    # of life. Before this, the refusal was ignored and the member waited out the whole
    # suspicion timeout.
    node = FakeNode(answer=False)
    service = _service(node)
    await service._checks.verify(PEER)
    assert node.pinged == [PEER]
    assert PEER in service._connected  # the close never came
    assert _refused_at(service) is not None
    service.view.tick(trio.current_time() + devnet().refused_grace + 0.01)
    assert _state(service) is MemberState.DEAD


async def test_a_refused_dial_without_a_ping_learnt_does_not_count_while_connected() -> None:
    # No ping went out (one was in flight already): nothing says the open link is dead.
    node = FakeNode(answer=None)
    service = _service(node)
    await service._checks.verify(PEER)
    assert _refused_at(service) is None
    assert _state(service) is MemberState.SUSPECT


async def test_an_unanswering_suspect_is_pinged_out_of_turn_less_and_less(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The attack on ourselves: 28 observers each pinging an overwhelmed live member every
    # time it is suspected again kept it overwhelmed (adapters/recheck_backoff.py).
    node = FakeNode(answer=False)
    service = _service(node)
    checks = service._checks
    pinged_at: list[float] = []
    for _ in range(60):  # a suspicion heard every second for a minute
        before = len(node.pinged)
        await checks.verify(PEER)
        if len(node.pinged) > before:
            pinged_at.append(trio.current_time())
        await trio.sleep(1.0)
    start = pinged_at[0]
    assert [round(t - start) for t in pinged_at] == [0, 2, 6, 14, 30]
    await trio.sleep(62.0 - (trio.current_time() - start))
    await checks.verify(PEER)  # the wait after 30 s is 32 s, the ceiling
    assert round(trio.current_time() - start) == 62 and len(node.pinged) == 6
    # An answer clears the backoff: after the next miss the wait starts again at 2 s.
    node.answer = True
    await trio.sleep(32.0)
    await checks.verify(PEER)
    service.view.on_ping_failed(PEER, trio.current_time())  # suspected again
    node.answer = False
    before = len(node.pinged)
    await checks.verify(PEER)
    await trio.sleep(2.0)
    await checks.verify(PEER)
    assert len(node.pinged) == before + 2


def test_recheck_backoff_forgets_misses_long_past() -> None:
    from adapters.recheck_backoff import RecheckBackoff

    backoff = RecheckBackoff(base=2.0, ceiling=32.0)
    for t in (0.0, 2.0, 6.0, 14.0, 30.0):
        backoff.missed("p", t)
    assert not backoff.allows("p", 61.9)
    backoff.missed("p", 3600.0)  # slow an hour ago: starts again from base
    assert backoff.allows("p", 3602.0)


async def test_the_service_paces_its_pinger_by_its_self_doubt() -> None:
    node = FakeNode(answer=False)
    service = _service(node)  # PEER's ping failed: one member, no doubt yet
    assert node.scale() == 1
    now = trio.current_time()
    for peer in ("Peer3", "Peer4"):
        digest = HealthDigest(node_id=peer, start_time_ms=1_000, seq=1, sent_at_ms=1_001)
        service.view.on_digest(digest, now)
        service.view.on_ping_failed(peer, now)
    assert node.scale() == 3  # three members failed: two beyond the first


def test_recheck_backoff_is_bounded_and_validated() -> None:
    import pytest

    from adapters.recheck_backoff import RecheckBackoff

    backoff = RecheckBackoff(base=1.0, ceiling=4.0, max_peers=8)
    for i in range(1000):
        backoff.missed(f"minted-{i}", 0.0)
    assert len(backoff._peers) == 8
    for _ in range(50):
        backoff.missed("p", 0.0)
    assert not backoff.allows("p", 3.99) and backoff.allows("p", 4.0)  # the ceiling
    with pytest.raises(ValueError):
        RecheckBackoff(base=2.0, ceiling=1.0)


async def test_a_connection_the_peer_closed_is_not_pinged_and_its_refusal_counts() -> None:
    # A killed process's kernel has closed its end (our socket is in CLOSE_WAIT), but
    # py-libp2p read the close 0.8 s late (20-node kill trials, 2026-12-04): meanwhile a
    # suspicion made us ping out of turn on the dead connection and wait its timeout,
    # and a refusal would have been ignored as long as the link looked open.
    node = FakeNode(answer=None)
    node.closed_by_peer = True
    service = _service(node)
    await service._checks.verify(PEER)
    assert node.pinged == []
    assert _refused_at(service) is not None
    service.view.tick(trio.current_time() + devnet().refused_grace + 0.01)
    assert _state(service) is MemberState.DEAD
