"""The simulator drives the node's own classes, reproducibly, and finds what it should.

Pure and fast: virtual time, no sockets. Each run is 10-20 nodes for a minute of virtual
time (well under a second of the host's).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import adapters.envelope
import adapters.gossip
import adapters.gossip_publisher
import adapters.gossip_tuning
import adapters.publish_decisions
import adapters.pull_pacing
import mesh.cluster_snapshot
import mesh.cluster_view
import mesh.digest
import mesh.sequencer
import mesh.snapshot_codec
import probes.rate_limit
from adapters.p2p_config import P2PConfig
from devnet.simulator import cluster as sim_cluster
from devnet.simulator import keys as sim_keys
from devnet.simulator import node as sim_node
from devnet.simulator import publisher as sim_publisher
from devnet.simulator import pulls as sim_pulls
from devnet.simulator.__main__ import main
from devnet.simulator.kernel import Life
from devnet.simulator.report import row, table
from devnet.simulator.scenarios import Result, Settings, build, run, warm_start
from mesh.cluster_config import certified, production


def _run(scenario: str, nodes: int = 10, **kw: object) -> Result:
    return run(Settings(nodes=nodes, scenario=scenario, duration=kw.pop("duration", 30.0), **kw))  # type: ignore[arg-type]


def test_the_simulator_drives_the_classes_the_node_imports() -> None:
    # What each simulator module imported, by name: the very objects of the node's code.
    used = {**vars(sim_node), **vars(sim_keys), **vars(sim_publisher), **vars(sim_pulls)}
    assert used["ClusterView"] is mesh.cluster_view.ClusterView
    assert vars(adapters.gossip)["ClusterView"] is mesh.cluster_view.ClusterView
    assert used["decode_gossip"] is mesh.digest.decode_gossip
    assert used["decode_snapshot"] is mesh.snapshot_codec.decode_snapshot
    assert used["encode_snapshot"] is mesh.snapshot_codec.encode_snapshot
    assert used["split_page"] is mesh.cluster_snapshot.split_page
    assert used["max_pages"] is adapters.pull_pacing.max_pages
    assert used["Sequencer"] is mesh.sequencer.Sequencer
    assert used["TokenBucket"] is probes.rate_limit.TokenBucket
    # The publisher's decisions, budget included, are the gossip service's own object.
    assert used["PublishDecisions"] is adapters.publish_decisions.PublishDecisions
    assert vars(adapters.gossip_publisher)["PublishDecisions"] is used["PublishDecisions"]
    assert vars(adapters.publish_decisions)["publish_budget"] is (
        adapters.gossip_tuning.publish_budget
    )
    assert used["GossipTuning"] is adapters.gossip_tuning.GossipTuning
    assert used["EnvelopeCache"] is adapters.envelope.EnvelopeCache
    cluster = build(Settings(nodes=3))
    # Not a subclass nor a stand-in: the very class, with the production preset.
    assert all(type(node.view) is mesh.cluster_view.ClusterView for node in cluster.nodes)
    # The production preset, with witnesses as a certified cluster's gossip service sets them.
    assert cluster.nodes[0].config == certified(production())
    assert isinstance(cluster.verifier, adapters.envelope.EnvelopeCache)


def test_statements_are_really_signed_and_a_forgery_fails() -> None:
    ident = sim_keys.identity(7, 0)
    raw = ident.seal(b"payload")
    verifier = sim_keys.shared_verifier()
    opened = verifier.open(raw)
    assert opened is not None and opened.signer == ident.peer_id and opened.data == b"payload"
    tampered = raw.replace(b"payload", b"paylobd")
    assert verifier.open(tampered) is None


def test_a_seeded_run_prints_the_same_table_byte_for_byte(capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["--nodes", "10", "--scenario", "crash", "--seed", "3", "--duration", "15"]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first
    assert "| crash" in first


def test_a_different_seed_gives_a_different_run() -> None:
    a = _run("crash", seed=1, duration=15.0)
    b = _run("crash", seed=2, duration=15.0)
    assert (a.seen, a.messages, a.bytes) != (b.seen, b.messages, b.bytes)


def test_a_crash_at_10_nodes_is_seen_dead_by_every_live_node() -> None:
    result = _run("crash")
    assert result.observers == 9
    assert len(result.seen) == 9
    # Production: suspicion minimum 4 s at n = 10; its neighbours' dial-backs are refused
    # within a fraction of a second.
    p99 = result.percentile(0.99)
    assert p99 is not None and p99 <= 4.5
    assert result.seen[0] < 0.5
    assert result.false_deaths == 0


def test_a_frozen_node_is_dead_everywhere_but_not_before_it_could_refute() -> None:
    result = _run("freeze")
    assert len(result.seen) == 9
    # A frozen kernel refuses nothing: a ping fails at the kernel's word (0.75 s), then
    # the suspicion's minimum (1.0 s at 10 members) gives a live peer time to refute.
    early = P2PConfig.ping_early_after
    assert early is not None
    assert min(result.seen) >= early + production().suspicion_timeout(10, 2)
    assert result.false_deaths == 0


def test_a_frozen_node_is_failed_on_its_kernels_word_before_the_ping_timeout() -> None:
    # Its kernel acknowledges our pings on clean links (adapters/tcp_witness.py), so the
    # first ping fails at 0.75 s and the freeze is dead everywhere sooner than the 2 s
    # ping timeout plus the suspicion's minimum.
    result = _run("freeze", nodes=10)
    p50 = result.percentile(0.5)
    assert p50 is not None
    assert p50 < P2PConfig.ping_timeout + production().suspicion_timeout(10, 2)


def test_a_leave_is_seen_at_once_and_nobody_dies() -> None:
    result = _run("leave")
    assert len(result.seen) == 9
    assert max(result.seen) < 0.1
    assert result.false_deaths == 0


def test_what_the_nodes_publish_is_counted_by_kind() -> None:
    # The window's publications, warm-up excluded: a freeze brings suspicions, never a
    # refutation (the frozen node cannot answer); a crash brings witnesses' notices (its
    # neighbours' dials are refused); a leave one leave notice and no suspicion.
    freeze = _run("freeze").published
    assert freeze.get("suspect", 0) >= 1 and "refutation" not in freeze
    crash = _run("crash").published
    assert crash.get("witness", 0) >= 1
    leave = _run("leave").published
    assert leave.get("leave") == 1
    assert "suspect" not in leave and "witness" not in leave


def test_a_join_of_10_nodes_converges() -> None:
    result = _run("join", duration=60.0)
    assert result.converged_at is not None
    assert result.converged_at < 5.0


def test_the_election_agrees_once_every_member_was_heard_firsthand() -> None:
    # The election skips members known from pulled views only (mesh.election: firsthand);
    # a refresh interval after a join (sooner where two pulled views vouch for a member)
    # every view has heard every member itself.
    later = _run("join", duration=60.0, after=20.0)
    assert later.admins == 1


def test_loss_raises_the_traffic_a_little_and_breaks_nothing() -> None:
    clean = _run("crash", loss=0.0)
    lossy = _run("crash", loss=0.05)
    assert clean.retransmits == 0 < lossy.retransmits
    assert len(lossy.seen) == 9 and lossy.false_deaths == 0
    # TCP retransmits: loss costs repeated segments, not a storm of messages.
    assert lossy.messages <= 1.2 * clean.messages


def test_starved_nodes_make_no_false_deaths() -> None:
    result = _run("starve", nodes=20, duration=60.0)
    assert result.false_deaths == 0


def test_an_answer_lost_twice_fails_no_ping_early() -> None:
    # At 1 % loss an answer lost twice comes with its sender's second retransmit, 0.6 s
    # after the ping; the early verdict waits that out (P2PConfig.ping_early_after), so an
    # idle cluster suspects nobody. At 0.5 s this run raised 4 suspicions, each flooded to
    # every member with its refutation.
    result = _run("idle", nodes=100, loss=0.01, duration=60.0)
    assert result.false_deaths == 0
    assert set(result.published) <= {"digest"}  # no suspicion, no refutation


@pytest.mark.parametrize("seed", [2, 3])
def test_a_starved_node_says_so_and_gets_the_time_to_refute(seed: int) -> None:
    # Its kernel answers our pings, its process late (0.5 s a timer, on average): on a clean
    # link that looks like a freeze. Before its digests carried its local health, these
    # seeds made it dead 27 times in a minute (every peer, three times).
    result = _run("starve", nodes=10, duration=60.0, seed=seed)
    assert result.false_deaths == 0


def test_the_table_has_a_row_per_run_and_fixed_columns() -> None:
    result = _run("crash", duration=10.0)
    text = table([row(result, 1024)])
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].startswith("| crash")
    assert dataclasses.replace(result.settings, seed=1).nodes == 10


def test_the_cluster_kernel_refuses_dials_only_where_nothing_listens() -> None:
    cluster = build(Settings(nodes=3))
    answers: list[tuple[int, bool]] = []
    cluster.nodes[1].life = Life.UP
    cluster.nodes[2].life = Life.FROZEN
    for peer in (1, 2):
        cluster.dial(0, peer, 1.0, lambda p, refused: answers.append((p, refused)))
    cluster.nodes[0].life = Life.UP
    cluster.exit(1, Life.CRASHED)
    cluster.dial(0, 1, 1.0, lambda p, refused: answers.append((p, refused)))
    cluster.loop.run_until(5.0)
    assert sorted(answers) == [(1, False), (1, True), (2, False)]
    assert isinstance(cluster, sim_cluster.Cluster)


def test_the_warm_start_fills_views_past_the_join_burst_at_the_gate_s_pace() -> None:
    # 300 members > join_burst (256): the warm start feeds them at join_rate, as a real
    # view would take them; fed all at one instant, the very same view refuses the excess.
    cluster = build(Settings(nodes=300))
    warm_start(cluster, links=4)
    assert all(len(node.view.members()) == 300 for node in cluster.nodes[:3])
    hasty = mesh.cluster_view.ClusterView(cluster.nodes[0].peer_id, production())
    refused = 0
    for node in cluster.nodes[1:]:
        digest = node.publisher.next_digest()
        refused += hasty.on_digest(digest, 0.0).rejection is not None
    assert refused == 299 - production().join_burst


def test_meetings_use_the_adapter_s_own_scheduler_and_respect_its_cap() -> None:
    import adapters.meetings
    from devnet.simulator import meeting as sim_meeting

    assert vars(sim_meeting)["Meetings"] is adapters.meetings.Meetings
    cluster = build(Settings(nodes=120))
    warm_start(cluster, links=4)
    cap = cluster.nodes[0].tuning.meet_links
    links = sorted(len(node.connected) for node in cluster.nodes)
    # The smaller id dials while it links fewer than the cap; inbound links come on top.
    assert links[len(links) // 2] >= cap
    assert links[0] < 120 - 1  # not a full mesh: the cap binds at this size


def test_a_devnet_shaped_join_links_everyone_and_then_a_kill_is_seen_at_once() -> None:
    # node i joins node i-1 only; the Kademlia refresh and meetings link the rest, so each
    # node's own dial-back sees the kill (refused) rather than waiting out a suspicion.
    result = run(
        Settings(nodes=8, scenario="crash", one_host=True, chain=True, cold=True, after=0.5)
    )
    assert result.converged_at is not None
    assert len(result.seen) == 7 and max(result.seen) < 0.5


def test_without_the_kademlia_refresh_a_chain_leaves_some_observer_waiting() -> None:
    # The guard's counterpart: with the refresh's links left out (and meetings unable to
    # run before the kill), an observer never linked to the victim waits the suspicion out
    # where nobody's refusal counts but its own (an open cluster).
    original = sim_cluster.Cluster.kad_refresh
    sim_cluster.Cluster.kad_refresh = lambda self, a: None  # type: ignore[method-assign]
    try:
        result = run(
            Settings(
                nodes=8, scenario="crash", one_host=True, chain=True, cold=True, seed=2, open=True
            )
        )
    finally:
        sim_cluster.Cluster.kad_refresh = original  # type: ignore[method-assign]
    assert max(result.seen) > 1.0


def test_the_validation_reads_the_bench_as_the_bench_polls() -> None:
    from devnet import bench_detection
    from devnet.simulator import validate

    assert all(
        validate.poll_interval(n) == bench_detection.poll_interval(n) for n in (1, 5, 6, 10, 11, 50)
    )
    assert validate.observed(0.001, 0.1) == 0.1
    assert validate.observed(0.1, 0.1) == 0.1
    assert abs(validate.observed(0.26, 0.25) - 0.5) < 1e-9
    assert validate.agrees(0.2, 0.3, 0.1) and not validate.agrees(4.1, 0.3, 0.1)
    real = validate.real_medians(
        {
            "runs": [
                {"target": "chorus", "n": 5, "kill": 0.3, "converge": 0.1},
                {"target": "chorus", "n": 5, "kill": 0.5, "converge": None},
                {"target": "chorus", "n": 5, "kill": 0.4},
                {"target": "Serf", "n": 5, "kill": 9.0},
                "junk",
            ]
        }
    )
    assert real == {(5, "kill"): 0.4, (5, "converge"): 0.1}


def test_the_scaling_table_keeps_runs_and_judges_the_goals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from devnet.simulator import scaling

    out = tmp_path / "scaling.json"
    assert (
        scaling.main(["--nodes", "10", "--loss", "0", "--scenarios", "crash", "--out", str(out)])
        == 0
    )
    kept = json.loads(out.read_text())
    assert [(e["scenario"], e["nodes"], e["seen"]) for e in kept] == [("crash", 10, 9)]
    # A second run adds to the file; the same key replaces its entry.
    scaling.main(["--nodes", "10", "--loss", "0", "--scenarios", "crash,freeze", "--out", str(out)])
    assert sorted(e["scenario"] for e in json.loads(out.read_text())) == ["crash", "freeze"]
    goal = {**kept[0], "nodes": 1000, "loss": 0.01, "p99": 2.5, "bytes": 900.0}
    text = scaling.render([goal])
    assert "| crash seen by every node, p99 | 2.50 s | <= 2 s | **no** |" in text
    assert "| traffic per node | 900 B/s | <= 1,000 B/s | yes |" in text
    assert scaling.memberlist_suspicion(1000) == 12.0


def test_witnesses_bring_a_crash_to_observers_without_a_link_of_their_own() -> None:
    # 150 nodes: each links about meet_links (32), so most observers never met the victim.
    # Certified members' refused dials count for all (rule 7); in an open cluster those
    # observers wait out the suspicion (production's minimum: 8.7 s at this size).
    from mesh.cluster_config import production

    admitted = _run("crash", nodes=150, duration=12.0)
    open_cluster = _run("crash", nodes=150, duration=12.0, open=True)
    wait = production().suspicion_timeout(150, 2)
    assert admitted.percentile(0.99) is not None and admitted.percentile(0.99) < 1.0
    assert open_cluster.percentile(0.5) is not None and open_cluster.percentile(0.5) > wait


def test_measured_ping_timeouts_find_a_freeze_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    # P2PConfig.ping_timeout_floor, off as the node ships: the simulator pings with the
    # real LinkTiming when asked, so its effect can be predicted before it is tried.
    # Without the kernel's early word, which finds a freeze on a clean link sooner still.
    monkeypatch.setattr(P2PConfig, "ping_early_after", None)
    fixed = _run("freeze", nodes=10)
    measured = _run("freeze", nodes=10, ping_floor=0.5)
    assert fixed.percentile(0.99) is not None and measured.percentile(0.99) is not None
    assert measured.percentile(0.99) < fixed.percentile(0.99) - 1.0


def test_a_starved_minority_does_not_flood_the_cluster() -> None:
    # Its pingers give it no early verdict (LinkPinger.patient), so its late answers
    # are not suspicions flooded to all: 14.6 KB/s a node here when they were.
    idle = _run("idle", nodes=100, duration=60.0)
    starved = _run("starve", nodes=100, duration=60.0)
    assert starved.false_deaths == 0
    assert starved.bytes / starved.window < 1.5 * idle.bytes / idle.window
    # ... and twice the timeout (P2PConfig.ping_patient_factor): 10 suspicions of them in
    # this minute with the plain timeout, 2 with it.
    assert starved.published.get("suspect", 0) <= 4
