"""The sampled mode: S full nodes with a view, the rest light nodes (devnet/simulator/light.py).

A sampled run must measure what the full run measures at the same seed (same links, same
victim, same seeds: only who holds a view differs), keep every node's part in the protocol
(routing, publishing, pings, suspicions, refutations) and build S views, not n.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from devnet.simulator import node as sim_node
from devnet.simulator import scaling
from devnet.simulator import scenarios as sim_scenarios
from devnet.simulator.__main__ import main
from devnet.simulator.cluster import Cluster
from devnet.simulator.light import LightNode
from devnet.simulator.scenarios import SETTLE, Result, Settings, build, run, sampled, warm_start
from mesh.messages import MemberState


def _run(scenario: str, nodes: int, sample: int = 0) -> Result:
    return run(Settings(nodes=nodes, scenario=scenario, loss=0.01, duration=10.0, sample=sample))


def _traffic(result: Result) -> float:
    return result.messages / (result.window * result.full)


@pytest.mark.parametrize("scenario", ["crash", "freeze"])
def test_a_sampled_run_gives_every_full_node_a_verdict_near_the_full_run_s(scenario: str) -> None:
    # 60 nodes, 1 % loss, 20 full: each full node sees the victim dead, and the figures stay
    # within the tolerance below of the unsampled run at the same seed (measured: p50 and
    # max within 1 ms, traffic a full node sends within 12 %).
    full = _run(scenario, 60)
    part = _run(scenario, 60, sample=20)
    assert part.full == 20 and part.observers == 19
    assert len(part.seen) == part.observers  # every full node has its verdict
    assert part.false_deaths == full.false_deaths == 0
    p50, q50 = full.percentile(0.5), part.percentile(0.5)
    assert p50 is not None and q50 is not None
    assert abs(q50 - p50) <= 0.1 * p50 + 0.02  # p50 within 10 % (+ 20 ms)
    assert max(part.seen) <= max(full.seen) + 0.1  # no full node later than the full run's last
    assert abs(_traffic(part) - _traffic(full)) <= 0.25 * _traffic(full)
    assert part.admins == 1


def test_a_seeded_sampled_run_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--nodes", "40", "--sample", "12", "--scenario", "crash", "--duration", "8"]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first
    assert "| 40 (12 full) |" in first and "Sampled: every figure is over the 12 full" in first


def test_the_sample_holds_the_victim_and_is_drawn_from_the_seed() -> None:
    settings = Settings(nodes=50, sample=10, seed=4)
    chosen = sampled(settings)
    assert chosen is not None and len(chosen) == 10
    assert sampled(settings) == chosen != sampled(Settings(nodes=50, sample=10, seed=5))
    # The victim run() draws is among them (run() asserts it too).
    cluster = build(settings)
    assert cluster.rng.randrange(50) in chosen
    assert sampled(Settings(nodes=50, sample=0)) is None
    assert sampled(Settings(nodes=50, sample=50)) is None
    with pytest.raises(ValueError):
        sampled(Settings(nodes=50, sample=10, scenario="join"))


def test_a_light_node_refutes_a_suspicion_of_itself() -> None:
    cluster = build(Settings(nodes=30, sample=6, scenario="idle"))
    warm_start(cluster, links=4)
    cluster.loop.run_until(SETTLE)
    light = next(host for host in cluster.hosts if isinstance(host, LightNode))
    accuser = cluster.nodes[0]
    # A full node's own evidence (a failed ping): the view suspects and publishes a notice.
    accuser.handle(accuser.view.on_ping_failed(light.peer_id, cluster.loop.now))
    member = accuser.view.member(light.peer_id)
    assert member is not None and member.state is MemberState.SUSPECT
    cluster.loop.run_until(SETTLE + 3.0)
    assert light.published["refutation"] == 1
    assert light.sequencer is not None and light.sequencer.incarnation == 1
    for node in cluster.nodes:  # every view took the refutation: alive at incarnation 1
        member = node.view.member(light.peer_id)
        assert member is not None and member.state is MemberState.ALIVE
        assert member.incarnation == 1


def test_light_nodes_witness_a_crash_of_a_linked_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The victim's light neighbours hear its connection close, dial back, are refused, and
    # say so (refused=True), as the full nodes' views would have them.
    cluster: list[Cluster] = []

    def keep(settings: Settings) -> Cluster:
        cluster.append(build(settings))
        return cluster[0]

    monkeypatch.setattr(sim_scenarios, "build", keep)
    result = run(Settings(nodes=40, sample=8, scenario="crash", duration=5.0))
    lights = [host for host in cluster[0].hosts if isinstance(host, LightNode)]
    assert sum(light.published["witness"] for light in lights) >= 1
    assert len(result.seen) == 7


def test_a_sampled_cluster_builds_s_views_and_holds_far_less(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    real = sim_node.ClusterView

    def counted(self_id: str, config: object = None) -> object:
        built.append(self_id)
        return real(self_id, config)  # type: ignore[arg-type]

    monkeypatch.setattr(sim_node, "ClusterView", counted)

    def peak(sample: int) -> int:
        tracemalloc.start()
        try:
            cluster = build(Settings(nodes=150, sample=sample, scenario="idle"))
            warm_start(cluster, links=4)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    sampled_peak = peak(15)
    assert len(built) == 15
    built.clear()
    full_peak = peak(0)
    assert len(built) == 150
    assert sampled_peak < 0.5 * full_peak


def test_the_cli_and_the_scaling_table_say_what_was_sampled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--nodes", "20", "--sample", "5", "--scenario", "join"])
    capsys.readouterr()
    out = tmp_path / "scaling.json"
    argv = ["--nodes", "30", "--loss", "0", "--scenarios", "join,crash", "--sample", "10"]
    assert scaling.main([*argv, "--max-members", "2000", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "join at 30 nodes skipped" in printed.err
    assert "Sampled rows, figures over their full nodes only: 30 nodes with 10 full." in (
        printed.out
    )
    [entry] = json.loads(out.read_text())
    assert (entry["full"], entry["seen"], entry["observers"], entry["max_members"]) == (
        10,
        9,
        9,
        2000,
    )
    # A view bound below n refuses the rest, and the table says so.
    assert "Views full (the rest refused, VIEW_FULL): 20 members at 30 nodes." in (
        scaling.render([{**entry, "max_members": 20}])
    )
