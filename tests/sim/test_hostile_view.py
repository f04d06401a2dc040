"""Strangers against the cluster view on real nodes (issue 12, "a view no stranger can bend").

One test per attack class. The attacker is a rogue libp2p peer (devnet/rogue.py) that also
mints identities for free, signs as each of them, writes protobuf our encoder refuses and
answers view pulls with snapshots of its own making (devnet/forge.py). Each test runs in an
open cluster and, where it makes sense, under an admission policy (every honest node
certified by the network's authority, the rogue and its identities not).

Every test ends with the same verdict (``_assert_intact``): no node crashed or stalled, the
honest nodes still converge, none of them was dead or missing in any view, or suspect for
longer than one refutation round, over a few suspicion timeouts (``_Vigil``); every digest
any view holds of an honest node is one that node signed itself, so nobody changed its
status, score or address; and the views hold the honest nodes plus at most the strangers
the bounds let in (with admission: exactly the honest nodes, as they were).

One more test checks that the members a stranger's snapshot lets into an open cluster's
view do not stretch the victim's heartbeat (they do not count in n until heard on the
topic, mesh/cluster_view.py rule 2).
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections.abc import Callable, Iterable

import pytest
import trio
from libp2p.pubsub.pb import rpc_pb2

from adapters.envelope import EnvelopeCache
from adapters.gossip_tuning import GossipTuning
from adapters.pull_pacing import max_pages
from devnet import forge
from devnet.rogue import TOPIC, RoguePeer
from devnet.testing import ALIVE, SUSPECT, MeshNetwork, MeshSnapshot, MeshTimeout, SimNode
from mesh import cluster_config
from mesh.cluster_roster import Member
from mesh.digest import decode_gossip
from mesh.messages import HealthDigest, MemberState, Version, ViewSnapshot
from mesh.model import Status
from mesh.snapshot_codec import decode_snapshot
from mesh.wire_bounds import MAX_COUNTER

pytestmark = pytest.mark.network

REJECTED = "chorus_gossip_rejected_total"
PULLS = "chorus_cluster_pulls_total"
ERRORS = "chorus_gossip_errors_total"
CONFIG = cluster_config.devnet()  # the preset of sim_config()'s "devnet" profile
TUNING = GossipTuning()
# The shortest suspicion of a small devnet cluster (2 s): a live member suspected for
# longer has missed its chance to refute. One refutation round (a notice in, a digest with
# a higher incarnation out, at most one a second: GossipTuning.refute_interval) takes well
# under it.
SUSPICION_MIN = CONFIG.suspicion_timeout(4, CONFIG.suspicion_confirmations)
REFUTE_GRACE = SUSPICION_MIN
# How long a victim that runs an admission policy waits for a peer to become a member
# before it gives up pulling from it, plus a margin.
NO_PULL_WAIT = TUNING.pull_subscription_wait + 1.0

ADMISSION = pytest.mark.parametrize("admission", [False, True], ids=["open", "admission"])


# --- what every test checks ---------------------------------------------------------------


class _Vigil:
    """A predicate for ``net.holds`` / ``net.until``: every honest live node is in every
    view, never dead, left or missing, and suspect for at most ``grace`` seconds in a row."""

    def __init__(self, net: MeshNetwork, grace: float = REFUTE_GRACE) -> None:
        self.honest = {node.peer_id: node.name for node in net.live}
        self.grace = grace
        self._since: dict[tuple[str, str], float] = {}
        self.problem = ""  # why it stopped holding

    def __call__(self, snap: MeshSnapshot) -> bool:
        for view in snap.values():
            for peer, name in self.honest.items():
                state = view.state_of(peer)
                key = (view.node, peer)
                if state == SUSPECT:
                    first = self._since.setdefault(key, snap.taken_at)
                    if snap.taken_at - first > self.grace:
                        self.problem = f"{name} suspect in {view.node} beyond {self.grace} s"
                        return False
                    continue
                self._since.pop(key, None)
                if state != ALIVE:
                    self.problem = f"{name} {state or 'missing'} in {view.node}"
                    return False
        return True


def _honest_converged(snap: MeshSnapshot) -> bool:
    """Every live honest node sees every other one alive (strangers may be listed too)."""
    if snap.unreachable:
        return False
    for name, expected in snap.expected.items():
        view = snap[name] if name in snap else None
        if view is None:
            return False
        if any(view.state_of(peer) != ALIVE for peer in expected):
            return False
    return True


def _picture(snap: MeshSnapshot) -> dict[tuple[str, str], tuple[str, int]]:
    """(observer, member) -> (state, incarnation), over every view (as in test_rogue)."""
    return {
        (view.node, peer.name or peer.peer_id): (peer.state, peer.incarnation)
        for view in snap.values()
        for peer in view.peers.values()
    }


def _member(observer: SimNode, peer: SimNode | str) -> Member:
    """``peer`` as ``observer``'s view holds it now (in-process nodes only)."""
    assert observer.handle is not None
    peer_id = peer if isinstance(peer, str) else peer.peer_id
    member = observer.handle.gossip.view.member(peer_id)
    assert member is not None, f"{observer.name} does not hold {peer_id}"
    return member


def _assert_signed_by_authors(net: MeshNetwork) -> None:
    """Every digest an honest view holds of another honest node is in the envelope that
    node signed, and says what that node says: its status, score and address cannot have
    been changed by anyone else."""
    honest = {node.peer_id: node for node in net.live}
    verify = EnvelopeCache()
    for observer in net.live:
        assert observer.handle is not None
        for entry in observer.handle.gossip.view.snapshot(time.time()).members:
            author = honest.get(entry.digest.node_id)
            if author is None or author is observer:
                continue
            opened = verify.open(entry.statement)
            assert opened is not None, f"{observer.name} holds an unsigned {author.name}"
            assert opened.signer == author.peer_id
            said = decode_gossip(
                opened.data, opened.signer, time.time(), config=CONFIG, check_age=False
            )
            assert said == entry.digest, f"{observer.name}'s {author.name} is not as signed"
            assert author.handle is not None
            assert entry.digest.http_addr == author.handle.gossip.http_addr
            assert entry.digest.status is not Status.UNHEALTHY


async def _assert_intact(
    net: MeshNetwork,
    *,
    admission: bool,
    before: MeshSnapshot,
    strangers: int = 0,
) -> MeshSnapshot:
    """The common verdict: alive, converged, authentic, and within bounds. Without
    admission up to ``strangers`` minted members may be listed (a bound the test derives
    from the join gate); with admission the views are exactly as ``before``, with nobody
    else in them."""
    assert all(node.live and node.error is None for node in net.nodes)
    honest = {node.peer_id for node in net.live}
    if admission:
        snap = await net.until_converged()
        assert all(set(view.peers) == honest for view in snap.values())
        assert _picture(snap) == _picture(before)
    else:
        snap = await net.until(_honest_converged, what="honest convergence")
        for view in snap.values():
            assert honest <= set(view.peers)
            assert len(view.peers) <= min(len(honest) + strangers, CONFIG.max_members)
    _assert_signed_by_authors(net)
    assert all(node.live and node.error is None for node in net.nodes)
    return snap


async def _watch(
    net: MeshNetwork,
    seconds: float,
    *,
    also: Callable[[], bool] | None = None,
    also_what: str = "",
) -> None:
    """Over ``seconds``: the honest nodes stay alive everywhere (``_Vigil``), and ``also()``
    stays true (``also_what`` names it)."""
    vigil = _Vigil(net)

    def holding(snap: MeshSnapshot) -> bool:
        if also is not None and not also():
            vigil.problem = also_what
            return False
        return vigil(snap)

    try:
        await net.holds(holding, seconds=seconds, what="honest nodes alive everywhere")
    except MeshTimeout as exc:
        raise MeshTimeout(f"{vigil.problem}: {exc}") from None


async def _rejected(net: MeshNetwork, node: SimNode, reason: str) -> float:
    return await net.metric(node, REJECTED, reason=reason)


async def _until_rejected(
    net: MeshNetwork, node: SimNode, reason: str, at_least: float, timeout: float = 15.0
) -> float:
    return await net.until_metric(
        node, REJECTED, lambda v: v >= at_least, reason=reason, timeout=timeout * net.scale
    )


# --- joining minted identities (open clusters) ----------------------------------------------


def _join_messages(
    identities: Iterable[forge.Identity], *, age: float = 1.0
) -> list[rpc_pb2.Message]:
    """Each identity's own first digest, signed by it: how a minted identity becomes a
    member of an open cluster."""
    start = forge.now_ms() - int(age * 1000)
    return [
        forge.sign(i, forge.raw_gossip(forge.digest_of(i, start_time_ms=start))) for i in identities
    ]


async def _until_members(
    net: MeshNetwork, identities: Iterable[forge.Identity], observers: Iterable[SimNode]
) -> None:
    """Until every one of ``observers`` holds every identity alive."""
    ids = {i.peer_id for i in identities}
    names = [o.name for o in observers]
    await net.until(
        lambda snap: all(snap[n].state_of(p) == ALIVE for n in names for p in ids),
        what=f"{len(ids)} minted members in {names}",
        timeout=15 * net.scale,
    )


async def _inject(
    rogue: RoguePeer, victim: SimNode, messages: list[rpc_pb2.Message], batch: int = 25
) -> None:
    """Messages in RPC frames of at most ``batch``, a moment apart: py-libp2p handles a
    frame's messages without yielding and its subscription channel holds 32, so beyond that
    a frame loses the rest after validation, uncounted (pubsub.py, notify_subscriptions)."""
    for first in range(0, len(messages), batch):
        if first:
            await trio.sleep(0.05)
        await rogue.inject(victim, *messages[first : first + batch])


async def _latest_statement(net: MeshNetwork, rogue: RoguePeer, node: SimNode) -> bytes:
    """The envelope of the newest digest of ``node`` the rogue captured."""
    with trio.fail_after(10 * net.scale):
        while True:
            for message in reversed(rogue.captured(TOPIC, origin=node)):
                said = decode_gossip(
                    message.data, node.peer_id, time.time(), config=CONFIG, check_age=False
                )
                if isinstance(said, HealthDigest):
                    return forge.statement(message)
            await trio.sleep(0.1)


async def _until_seq_rises(net: MeshNetwork, observer: SimNode, peer: SimNode, by: int) -> int:
    """Until ``observer`` holds a digest of ``peer`` ``by`` statements newer; its seq."""
    first = _member(observer, peer).seq
    with trio.fail_after(20 * net.scale):
        while (seq := _member(observer, peer).seq) < first + by:  # noqa: ASYNC110 (no event)
            await trio.sleep(0.1)
    return seq


async def _until_incarnation(
    net: MeshNetwork, node: SimNode, wanted: Callable[[int], bool], what: str
) -> None:
    """Until every view holds ``node`` at an incarnation that is ``wanted``."""
    seen: dict[str, int] = {}

    def refuted(snap: MeshSnapshot) -> bool:
        seen.update({v.node: v.peer(node).incarnation for v in snap.values()})
        return all(wanted(i) for i in seen.values())

    try:
        await net.until(refuted, what=f"{node.name} at incarnation {what}", timeout=15 * net.scale)
    except MeshTimeout as exc:
        raise MeshTimeout(f"incarnations of {node.name} {seen}: {exc}") from None


def _http_cluster(node: SimNode) -> dict:
    """GET /health/cluster over a real socket (blocking: run in a thread)."""
    request = urllib.request.Request(node.http_url + "/health/cluster")
    token = node.config.health_token
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5.0) as response:
        body = json.loads(response.read().decode("utf-8"))
    assert isinstance(body, dict)
    return body


# --- 1. overflowing incarnation ---------------------------------------------------------------


@ADMISSION
async def test_an_overflowing_incarnation_is_refused_and_the_largest_refuted_by_one(
    mesh_network, admission: bool
) -> None:
    net = await mesh_network(4, admission=admission)
    victim, x = net.nodes[0], net.nodes[2]
    before = await net.snapshot()
    base = {r: await _rejected(net, victim, r) for r in ("invalid_field", "not_admitted")}
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        # The observer: a minted identity that joins first where it can (an open cluster),
        # so that its notices count; a stranger's make nobody refute.
        observer = forge.mint()
        await rogue.inject(victim, *_join_messages([observer]))
        if admission:
            await _until_rejected(net, victim, "not_admitted", base["not_admitted"] + 1)
        else:
            await _until_members(net, [observer], net.live)
        start = _member(victim, x).key.start_time_ms

        # 2**64 - 1 fits the protobuf field but not our bound: refused at the validator,
        # before any admission policy is consulted, so never forwarded.
        over = forge.notice_by(observer, x.peer_id, Version(start, 2**64 - 1, 2**64 - 1))
        await rogue.inject(victim, forge.sign(observer, forge.raw_gossip(over)))
        await _until_rejected(net, victim, "invalid_field", base["invalid_field"] + 1)

        # The largest incarnation a peer may send: X answers with its own incarnation + 1.
        top = forge.notice_by(observer, x.peer_id, Version(start, MAX_COUNTER, MAX_COUNTER))
        await rogue.inject(victim, forge.sign(observer, forge.raw_gossip(top)))
        expected = 0 if admission else 1
        if admission:
            await _until_rejected(net, victim, "not_admitted", base["not_admitted"] + 2)
        else:
            await _until_incarnation(net, x, lambda i: i == 1, "1")
        await _watch(net, 3 * SUSPICION_MIN)
        snap = await net.snapshot()
        assert all(v.peer(x).incarnation == expected for v in snap.values())
        assert x.handle is not None
        assert x.handle.gossip.sequencer.incarnation == expected
        # X keeps heartbeating, and its publisher never failed on what it was told.
        await _until_seq_rises(net, victim, x, 2)
        assert await net.metric(x, ERRORS, where="publish") == 0
        assert await net.metric(x, ERRORS, where="handle") == 0
        assert await _rejected(net, victim, "invalid_field") == base["invalid_field"] + 1
        for other in net.nodes[1:]:
            assert await _rejected(net, other, "invalid_field") == 0  # not forwarded
        await _assert_intact(
            net, admission=admission, before=before, strangers=0 if admission else 1
        )


# --- 2. a suspicion based in the future ---------------------------------------------------------


@ADMISSION
async def test_a_future_basis_suspicion_never_makes_a_member_dead(
    mesh_network, admission: bool
) -> None:
    net = await mesh_network(4, admission=admission)
    victim, x = net.nodes[0], net.nodes[2]
    before = await net.snapshot()
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        me = forge.Identity.of_host(rogue.node.host)
        # X's life 20 s from now (within the 30 s skew): before the clamp, a basis no digest
        # of this life could ever exceed, so nothing could answer it.
        basis = Version(_member(victim, x).key.start_time_ms + 20_000, 0, 1)
        notices = [forge.sign(me, forge.raw_gossip(forge.notice_by(me, x.peer_id, basis)))]
        strangers = 0
        if not admission:
            # A minted identity that joined first: an alive member, so its notice counts.
            member = forge.mint()
            await rogue.inject(victim, *_join_messages([member]))
            await _until_members(net, [member], net.live)
            strangers = 1
            notices.append(
                forge.sign(member, forge.raw_gossip(forge.notice_by(member, x.peer_id, basis)))
            )
        base = await _rejected(net, victim, "not_member" if not admission else "not_admitted")
        await rogue.inject(victim, *notices)
        if admission:
            await _until_rejected(net, victim, "not_admitted", base + 1)
        else:
            # The rogue is no member: its notice counts for nothing, not even a refutation.
            # The member's does count, held at what X said, and X refutes it.
            await _until_rejected(net, victim, "not_member", base + 1)
            await _until_incarnation(net, x, lambda i: i >= 1, "at least 1")
        await _watch(net, 3 * SUSPICION_MIN)
        snap = await _assert_intact(net, admission=admission, before=before, strangers=strangers)
        assert all(v.peer(x).incarnation <= len(notices) for v in snap.values())


# --- 3. Sybil confirmations -----------------------------------------------------------------------


@ADMISSION
async def test_sybil_confirmations_do_not_kill(mesh_network, admission: bool) -> None:
    net = await mesh_network(4, admission=admission)
    victim, x = net.nodes[0], net.nodes[2]
    before = await net.snapshot()
    sybils = forge.mint_many(4)
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        base = await _rejected(net, victim, "not_admitted")
        await rogue.inject(victim, *_join_messages(sybils))
        if admission:
            await _until_rejected(net, victim, "not_admitted", base + len(sybils))
        else:
            await _until_members(net, sybils, net.live)
        # Ahead of anything X said: every view holds it at what X said (rule 3).
        held = _member(victim, x).key
        basis = held._replace(seq=held.seq + 1_000)
        await rogue.inject(
            victim,
            *(
                forge.sign(s, forge.raw_gossip(forge.notice_by(s, x.peer_id, basis)))
                for s in sybils
            ),
        )
        if admission:
            await _until_rejected(net, victim, "not_admitted", base + 2 * len(sybils))
        else:
            await _until_incarnation(net, x, lambda i: i >= 1, "at least 1")
        await _watch(net, 3 * SUSPICION_MIN)
        await _assert_intact(net, admission=admission, before=before, strangers=len(sybils))
        if admission:
            assert await _rejected(net, victim, "not_admitted") == base + 2 * len(sybils)
            for other in net.nodes[1:]:
                assert await _rejected(net, other, "not_admitted") == 0  # not forwarded


# --- 4. a forged digest in a pulled snapshot --------------------------------------------------


@ADMISSION
async def test_a_forged_digest_in_a_snapshot_is_rejected(mesh_network, admission: bool) -> None:
    net = await mesh_network(4, admission=admission)
    # Two victims, one per way of forging: n0 gets X's digest signed by the rogue as itself
    # (signer_mismatch), n1 gets it in an envelope that claims X but is signed by the rogue
    # (forged).
    mismatched, misclaimed, x = net.nodes[0], net.nodes[1], net.nodes[2]
    before = await net.snapshot()
    async with net.rogue() as rogue:
        me = forge.Identity.of_host(rogue.node.host)
        held = _member(mismatched, x)
        lie = forge.digest_of(
            x.peer_id,
            start_time_ms=held.key.start_time_ms,
            incarnation=held.incarnation,
            seq=held.seq + 1_000,
            status=Status.UNHEALTHY,
            score=0.0,
            http_addr="http://10.6.6.6:1",
        )
        data = forge.raw_gossip(lie)
        answers = {
            mismatched.peer_id: forge.sign(me, data),
            misclaimed.peer_id: forge.sign(me, data, claim=x.peer_id),
        }
        server = forge.PullServer(
            lambda peer: (
                forge.raw_snapshot(me.peer_id, [forge.ForgedEntry(forge.statement(answers[peer]))])
                if peer in answers
                else None
            )
        )
        server.install(rogue.node.host)
        pulls = {
            v.name: await net.metric(v, PULLS, side="client", result="rejected")
            for v in (mismatched, misclaimed)
        }
        for victim in (mismatched, misclaimed):
            await rogue.connect(victim)
        if admission:
            # A victim pulls only from members, and the rogue can never become one.
            await _watch(
                net,
                NO_PULL_WAIT,
                also=lambda: server.total_calls() == 0,
                also_what="the victim pulled from the rogue",
            )
            for victim in (mismatched, misclaimed):
                rejected = await net.metric(victim, PULLS, side="client", result="rejected")
                assert rejected == pulls[victim.name]
        else:
            for victim, reason in ((mismatched, "signer_mismatch"), (misclaimed, "forged")):
                await server.until_served(victim.peer_id, timeout=10 * net.scale)
                await _until_rejected(net, victim, reason, 1)
                rejected = await net.metric(victim, PULLS, side="client", result="rejected")
                assert rejected == pulls[victim.name] + 1
        # X's own later digests still count: the forged seq was never taken.
        for victim in (mismatched, misclaimed):
            seq = await _until_seq_rises(net, victim, x, 2)
            assert seq < lie.seq
        await _watch(net, 2 * SUSPICION_MIN)
        snap = await _assert_intact(net, admission=admission, before=before)
        assert all(v.peer(x).status != "unhealthy" for v in snap.values())


# --- 5. death by made-up observers in a snapshot -------------------------------------------------


@ADMISSION
async def test_a_snapshot_death_with_made_up_observers_changes_nothing(
    mesh_network, admission: bool
) -> None:
    net = await mesh_network(4, admission=admission)
    victim, helper, x = net.nodes[0], net.nodes[1], net.nodes[2]
    before = await net.snapshot()
    observers = forge.mint_many(20)
    async with net.rogue(connect_to=[helper]) as rogue:
        # X's own signed digest, captured on the topic: the entry carries it as X signed it,
        # marked DEAD and suspected by twenty identities nobody ever heard of.
        statement = await _latest_statement(net, rogue, x)
        held = _member(victim, x).key
        basis = held._replace(seq=held.seq + 1_000)
        notices = [
            forge.sign(o, forge.raw_gossip(forge.notice_by(o, x.peer_id, basis))) for o in observers
        ]
        me = forge.Identity.of_host(rogue.node.host)
        entry = forge.ForgedEntry(
            statement,
            state=MemberState.DEAD,
            suspicions=tuple(forge.statement(n) for n in notices),
        )
        snapshot = forge.raw_snapshot(me.peer_id, [entry])
        server = forge.PullServer(lambda peer: snapshot if peer == victim.peer_id else None)
        server.install(rogue.node.host)
        reason = "not_admitted" if admission else "not_member"
        base = await _rejected(net, victim, reason)
        await rogue.connect(victim)
        if admission:
            await _watch(
                net,
                NO_PULL_WAIT,
                also=lambda: server.calls.get(victim.peer_id, 0) == 0,
                also_what="the victim pulled from the rogue",
            )
            assert await _rejected(net, victim, reason) == base
        else:
            await server.until_served(victim.peer_id, timeout=10 * net.scale)
            await _until_rejected(net, victim, reason, base + len(observers))
            base += len(observers)
        # The same notices on the topic: counted, never weighed.
        await rogue.until_subscribed(victim)
        await rogue.inject(victim, *notices)
        await _until_rejected(net, victim, reason, base + len(observers))
        await _watch(net, 2 * SUSPICION_MIN)
        await _assert_intact(net, admission=admission, before=before)
        assert all(v.state_of(x) == ALIVE for v in (await net.snapshot()).values())


# --- 6. a snapshot of thousands of members ----------------------------------------------------


def _thousands_server(
    rogue: RoguePeer, victim: SimNode, count: int = 2_000
) -> tuple[forge.PullServer, int]:
    """A pull server that answers ``victim`` (only) with a snapshot of as many of ``count``
    minted members as fit under the size limit, each in its own signed digest. Each one
    started an hour ago and says it is healthy: admitted, the longest-running of them would
    be elected admin. Returns the server and how many members the snapshot holds."""
    me = forge.Identity.of_host(rogue.node.host)
    entries = [
        forge.ForgedEntry(forge.statement(m))
        for m in _join_messages(forge.mint_many(count), age=3600)
    ]
    fit = forge.fit_entries(me.peer_id, entries)
    assert fit >= 300
    snapshot = forge.raw_snapshot(me.peer_id, entries[:fit])
    server = forge.PullServer(lambda peer: snapshot if peer == victim.peer_id else None)
    server.install(rogue.node.host)
    return server, fit


async def _until_merged(net: MeshNetwork, server: forge.PullServer, victim: SimNode) -> None:
    """Until the victim pulled the snapshot and its join gate turned some away."""
    base = await _rejected(net, victim, "join_rate")
    await server.until_served(victim.peer_id, timeout=10 * net.scale)
    await _until_rejected(net, victim, "join_rate", base + 1)


@ADMISSION
async def test_a_snapshot_of_thousands_of_members_is_held_to_the_join_gate(
    mesh_network, admission: bool
) -> None:
    net = await mesh_network(3, admission=admission)
    victim = net.nodes[0]
    before = await net.snapshot()
    async with net.rogue() as rogue:
        server, fit = _thousands_server(rogue, victim)
        assert victim.handle is not None
        size = len(victim.handle.gossip.view.members())
        base = {r: await _rejected(net, victim, r) for r in ("join_rate", "view_full")}
        await rogue.connect(victim)
        if admission:
            await _watch(
                net,
                NO_PULL_WAIT,
                also=lambda: server.total_calls() == 0,
                also_what="the victim pulled from the rogue",
            )
            snap = await _assert_intact(net, admission=True, before=before)
            honest = {n.peer_id for n in net.live}
            assert all(view.admin in honest for view in snap.values())
            return
        await _until_merged(net, server, victim)
        # Every entry either joined (through the gate's burst) or was counted.
        grown = len(victim.handle.gossip.view.members()) - size
        refused = await _rejected(net, victim, "join_rate") - base["join_rate"]
        assert 0 < grown <= CONFIG.join_burst
        assert grown + refused == fit
        assert await _rejected(net, victim, "view_full") == base["view_full"]
        await _watch(net, 2 * SUSPICION_MIN)
        # The others never pulled from the rogue, but anti-entropy carries what the victim
        # took in to them, each through its own join gate: in an open cluster a minted
        # member the view holds is a member. No more than the victim took in, though.
        snap = await _assert_intact(net, admission=False, before=before, strangers=grown)
        for other in net.nodes[1:]:
            assert len(snap[other.name].peers) <= len(net.live) + grown


async def test_a_snapshot_of_strangers_does_not_slow_the_victims_heartbeat(
    mesh_network,
) -> None:
    net = await mesh_network(3)
    victim = net.nodes[0]
    async with net.rogue() as rogue:
        server, _ = _thousands_server(rogue, victim)
        await rogue.connect(victim)
        await _until_merged(net, server, victim)
        held = {other.name: _member(other, victim).incarnation for other in net.nodes[1:]}
        silence = CONFIG.silence_timeout(len(net.live))

        def undisturbed(snap: MeshSnapshot) -> bool:
            return snap.none_see(victim, SUSPECT) and all(
                snap[name].peer(victim).incarnation == incarnation
                for name, incarnation in held.items()
            )

        # Three of the honest cluster's silence timeouts: the victim never had to refute.
        await net.holds(undisturbed, seconds=3 * silence, what="the victim never suspected")


async def test_a_responder_that_pages_for_ever_is_cut_off(mesh_network) -> None:
    # Empty pages, each naming a next one: the victim follows at most max_pages of them
    # (fewer if its pull budget, a token a page, ran low on its peers' pulls first), and
    # nothing else changes.
    net = await mesh_network(3)
    victim = net.nodes[0]
    before = await net.snapshot()
    async with net.rogue() as rogue:
        me = forge.Identity.of_host(rogue.node.host)
        server = forge.PullServer()

        def endless(peer: str) -> bytes | None:
            if peer != victim.peer_id:
                return None
            return forge.raw_snapshot(me.peer_id, [], next_after=f"Page{len(server.cursors):04d}")

        server.answer = endless
        server.install(rogue.node.host)
        await rogue.connect(victim)
        limit = 8  # pages a view of max_members (1,024) needs at 2 KiB a member, at most
        assert max_pages(CONFIG) == limit
        await server.until_served(victim.peer_id, 2, timeout=10 * net.scale)
        await _watch(
            net,
            NO_PULL_WAIT,
            also=lambda: server.calls.get(victim.peer_id, 0) <= limit,
            also_what="the victim pulled more pages",
        )
        pages = len(server.cursors)
        assert 2 <= pages <= limit
        assert server.cursors == ["", *(f"Page{i:04d}" for i in range(1, pages))]
        await _assert_intact(net, admission=False, before=before)


# --- 7. more observers than a suspicion keeps ----------------------------------------------------


async def test_observer_overflow_is_capped_and_the_victim_still_serves(mesh_network) -> None:
    net = await mesh_network(3)
    victim, x = net.nodes[0], net.nodes[2]
    before = await net.snapshot()
    observers = forge.mint_many(40)
    # A minted suspect too: it never refutes, so the victim's suspicion of it stays (and
    # turns into death) and shows how many observers it kept.
    ghost = forge.mint()
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        await _inject(rogue, victim, _join_messages([*observers, ghost]))
        await _until_members(net, [*observers, ghost], [victim])
        basis_x = _member(victim, x).key
        basis_ghost = _member(victim, ghost.peer_id).key
        notices = [
            forge.sign(o, forge.raw_gossip(forge.notice_by(o, suspect, basis)))
            for o in observers
            for suspect, basis in ((ghost.peer_id, basis_ghost), (x.peer_id, basis_x))
        ]
        await _inject(rogue, victim, notices)
        assert victim.handle is not None
        view = victim.handle.gossip.view
        with trio.fail_after(10 * net.scale):
            while len(_member(victim, ghost.peer_id).suspected_by) < CONFIG.max_observers:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await _watch(net, 2 * SUSPICION_MIN)
        # Others' notices are bounded; the victim's own evidence may count one beyond.
        others = _member(victim, ghost.peer_id).suspected_by - {victim.peer_id}
        assert len(others) == CONFIG.max_observers
        most = CONFIG.max_observers + 1
        assert all(len(m.suspected_by) <= most for m in view.members().values())

        data = await rogue.pull_view(victim)
        assert data is not None
        pulled = decode_snapshot(
            data, victim.peer_id, time.time(), verify=EnvelopeCache().open, config=CONFIG
        )
        assert isinstance(pulled, ViewSnapshot), pulled
        assert all(len(e.suspicions) <= most for e in pulled.members)
        ghost_entry = next(e for e in pulled.members if e.digest.node_id == ghost.peer_id)
        theirs = [s for s in ghost_entry.suspicions if s.notice.observer_id != victim.peer_id]
        assert len(theirs) == CONFIG.max_observers
        await _assert_intact(net, admission=False, before=before, strangers=len(observers) + 1)


# --- 8. a flood of fresh identities -------------------------------------------------------------


@ADMISSION
async def test_a_flood_of_fresh_identities_is_bounded(mesh_network, admission: bool) -> None:
    net = await mesh_network(3, admission=admission)
    victim = net.nodes[0]
    before = await net.snapshot()
    minted = forge.mint_many(300)
    messages = _join_messages(minted)
    reasons = ("flooded", "join_rate", "not_admitted", "view_full")
    async with net.rogue(connect_to=[victim]) as rogue:
        await rogue.until_subscribed(victim)
        base = {r: await _rejected(net, victim, r) for r in reasons}
        assert victim.handle is not None
        size = len(victim.handle.gossip.view.members())
        # Ten a frame, ten frames a second: 300 in about 3 s.
        began = trio.current_time()
        with trio.fail_after(30 * net.scale):
            for i, first in enumerate(range(0, len(messages), 10)):
                await trio.sleep_until(began + i * 0.1)
                await rogue.inject(victim, *messages[first : first + 10])
        took = trio.current_time() - began

        def refused(counts: dict[str, float]) -> float:
            return sum(counts[r] - base[r] for r in reasons)

        async def counts() -> dict[str, float]:
            return {r: await _rejected(net, victim, r) for r in reasons}

        def joined() -> int:
            assert victim.handle is not None
            return len(victim.handle.gossip.view.members()) - size

        # Every one either joined or was counted (polled: another node's counters).
        with trio.fail_after(15 * net.scale):
            while joined() + refused(now := await counts()) < len(minted):  # noqa: ASYNC110
                await trio.sleep(0.2)
        assert joined() + refused(now) == len(minted), now
        if admission:
            # None got in: refused as not admitted (or as flooded, where a validator
            # checks the strangers' rate first).
            assert joined() == 0
            assert now["not_admitted"] > base["not_admitted"]
        else:
            assert now["flooded"] > base["flooded"]
            # Strangers share one bucket: its burst plus its rate over the flood (one
            # token of slack for the clock), and never beyond the join gate.
            bound = TUNING.stranger_burst + TUNING.stranger_rate * (took + 1.0)
            assert 0 < joined() <= min(bound, CONFIG.join_burst + CONFIG.join_rate * took)
        # Still answering, over a real socket.
        body = await trio.to_thread.run_sync(_http_cluster, victim)
        assert body["node_id"] == victim.peer_id
        await _watch(net, 2 * SUSPICION_MIN)
        await _assert_intact(net, admission=admission, before=before, strangers=joined())


# --- dial-backs aimed elsewhere ------------------------------------------------------------


async def test_a_suspects_advertised_address_is_never_dialled(mesh_network) -> None:
    # A member advertises a third party's address as its own, then is suspected (by a
    # second minted member): if observers dialled what digests advertise, the whole
    # cluster would connect to any host and port an attacker names (a port scan, or a
    # flood from inside). They dial only where they once authenticated the peer.
    net = await mesh_network(4)
    canary = trio.socket.socket()
    await canary.bind(("127.0.0.1", 0))
    canary.listen(64)
    accepted = 0

    async def count_connections() -> None:
        nonlocal accepted
        while True:
            conn, _ = await canary.accept()
            accepted += 1
            conn.close()

    decoy, accuser = forge.mint(), forge.mint()
    port = canary.getsockname()[1]
    start = forge.now_ms() - 1000
    aimed = dataclasses.replace(
        forge.digest_of(decoy, start_time_ms=start),
        p2p_addrs=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{decoy.peer_id}",),
    )
    with canary:
        async with trio.open_nursery() as nursery, net.rogue(connect_to=[net.nodes[0]]) as rogue:
            nursery.start_soon(count_connections)
            await rogue.until_subscribed(net.nodes[0])
            await rogue.inject(
                net.nodes[0],
                forge.sign(decoy, forge.raw_gossip(aimed)),
                *_join_messages([accuser]),
            )
            await _until_members(net, [decoy, accuser], net.live)
            basis = _member(net.nodes[0], decoy.peer_id).key
            notice = forge.notice_by(accuser, decoy.peer_id, basis)
            await rogue.inject(net.nodes[0], forge.sign(accuser, forge.raw_gossip(notice)))
            await net.until(
                lambda m: all(v.state_of(decoy.peer_id) not in (None, ALIVE) for v in m.values()),
                what="the decoy suspected everywhere",
            )
            # Every node checked the suspect, and found nowhere it may dial ("unknown").
            for node in net.nodes:
                await net.until_metric(
                    node, "chorus_gossip_dialbacks_total", lambda v: v >= 1, result="unknown"
                )
            nursery.cancel_scope.cancel()
    assert accepted == 0
