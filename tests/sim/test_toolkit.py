"""The simulation toolkit's own logic, without a network: topologies, flags, snapshots and
the reports a test reads when something fails."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
import trio

from adapters.cli import build_parser
from devnet import pytest_plugin as plugin
from devnet.testing import (
    ALIVE,
    DEAD,
    SUSPECT,
    MachineTooSlow,
    MeshNetwork,
    MeshSnapshot,
    MeshTimeout,
    SimNode,
    UnsupportedFault,
    View,
    _edges,
    _flags,
    _view_from_json,
    sim_config,
    time_scale,
)
from mesh.config_sources import load_config


def _connected(nodes: set[int], edges: list[tuple[int, int]]) -> bool:
    if not nodes:
        return True
    seen, todo = set(), [min(nodes)]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo += [b if a == node else a for a, b in edges if node in (a, b)]
        todo = [n for n in todo if n in nodes]
    return seen == nodes


@pytest.mark.parametrize(("topology", "degree", "tolerated"), [("ring2", 4, 3), ("ring", 2, 1)])
@pytest.mark.parametrize("n", [4, 5, 10, 20])
def test_rings_survive_failures_and_split_into_whole_blocks(
    n: int, topology: str, degree: int, tolerated: int
) -> None:
    edges = _edges(topology, n)  # type: ignore[arg-type]
    assert all(sum(node in e for e in edges) == min(degree, n - 1) for node in range(n))
    for dead in itertools.combinations(range(n), min(tolerated, n - 1)):
        rest = set(range(n)) - set(dead)
        assert _connected(rest, [e for e in edges if not set(e) & set(dead)]), dead
    for cut in range(1, n):
        for block in (set(range(cut)), set(range(cut, n))):
            assert _connected(block, [e for e in edges if set(e) <= block]), (cut, block)


def test_auto_topology_thins_out_beyond_ten_nodes() -> None:
    assert _edges("auto", 10) == _edges("ring2", 10)
    assert _edges("auto", 11) == _edges("ring", 11)


def test_other_topologies() -> None:
    assert _edges("chain", 4) == [(0, 1), (1, 2), (2, 3)]
    assert _edges("star", 4) == [(0, 1), (0, 2), (0, 3)]
    assert _edges("full", 3) == [(0, 1), (0, 2), (1, 2)]
    assert _edges([(2, 0), (1, 2)], 3) == [(0, 2), (1, 2)]
    with pytest.raises(ValueError, match="unknown topology"):
        _edges("mesh", 5)  # type: ignore[arg-type]


def test_process_flags_reproduce_the_config() -> None:
    config = sim_config(data_dir="/tmp/x", p2p_port=4001, min_peers=2, shutdown_on_critical=False)
    args = vars(build_parser().parse_args(_flags(config)))
    args.pop("config")
    assert load_config(args, environ={}) == config


def _view(name: str, states: dict[str, str]) -> View:
    body = {
        "node_id": name.upper(),
        "status": "healthy",
        "admin": "A",
        "peers": [
            {"peer_id": p, "state": s, "status": "healthy", "history": []}
            for p, s in states.items()
        ],
    }
    return _view_from_json(name, body, {"A": "a", "B": "b", "C": "c"})


def _snapshot(**views: dict[str, str]) -> MeshSnapshot:
    return MeshSnapshot(
        {name: _view(name, states) for name, states in views.items()},
        expected={"a": frozenset("AB"), "b": frozenset("AB")},
        names={"A": "a", "B": "b", "C": "c"},
    )


def test_snapshot_predicates() -> None:
    snap = _snapshot(
        a={"A": ALIVE, "B": ALIVE, "C": DEAD}, b={"A": ALIVE, "B": ALIVE, "C": SUSPECT}
    )
    assert snap.converged()
    assert snap.all_see("C", (SUSPECT, DEAD)) and not snap.all_see("C", DEAD)
    assert snap.all_see("C", DEAD, observers=["a"])
    assert snap.all_see("C", DEAD, observers=["z"]) is False  # an unread view sees nothing
    assert snap.none_see("A", DEAD)
    assert snap["a"].state_of("C") == DEAD and snap["a"].peer("C").name == "c"
    assert "a: alive a,b; dead c" in snap.describe()

    lagging = _snapshot(a={"A": ALIVE, "B": SUSPECT}, b={"A": ALIVE, "B": ALIVE, "C": ALIVE})
    assert not lagging.converged()
    assert lagging.lagging() == {
        "a": (frozenset({"b"}), frozenset()),
        "b": (frozenset(), frozenset({"c"})),
    }


def test_time_scale_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_MESH_TIME_SCALE", "2.5")
    assert time_scale() == 2.5
    monkeypatch.setenv("CHORUS_MESH_TIME_SCALE", "fast")
    with pytest.raises(Exception, match="not a number"):
        time_scale()


async def test_a_slow_machine_is_reported_as_such(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        net = MeshNetwork(nursery, tmp_path, lag_limit=0.5)
        net._lag._samples.append((trio.current_time(), 0.2, 0.3))
        failure = net._failure("timed out waiting for x", None, since=0.0)
        assert isinstance(failure, MeshTimeout) and isinstance(failure, AssertionError)
        assert "event-loop lag at most 0.20 s" in str(failure)

        net._lag._samples.append((trio.current_time(), 1.7, 0.3))
        net._lag.max_lag = 1.7
        failure = net._failure("timed out waiting for x", None, since=0.0)
        assert isinstance(failure, MachineTooSlow)
        assert "lagged up to 1.70 s (limit 0.50 s" in str(failure)
        assert net.too_slow

        pings = MeshNetwork(nursery, tmp_path / "p")
        pings._spurious_pings.append((trio.current_time(), "n0", "n1"))
        assert pings.too_slow and "n0->n1" in pings.slowness_report()

        busy = MeshNetwork(nursery, tmp_path / "b")
        busy._lag._samples.append((trio.current_time(), 0.05, 0.97))
        assert busy.too_slow and "busy up to 97% of a core" in busy.slowness_report()
        # ...unless nodes were joining then: start-ups are heavy and say nothing.
        busy._startups.append((trio.current_time() - 1.0, trio.current_time()))
        assert not busy.too_slow
        nursery.cancel_scope.cancel()


async def test_in_process_nodes_cannot_be_frozen(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        net = MeshNetwork(nursery, tmp_path)
        node = SimNode("n0", 0, False, sim_config(), tmp_path, state="running")
        net.nodes.append(node)
        with pytest.raises(UnsupportedFault, match="add_node\\(process=True\\)"):
            await net.freeze(node)
        with pytest.raises(UnsupportedFault):
            async with net.starved(node):
                pass
        nursery.cancel_scope.cancel()


class _Item:
    def __init__(self, networks: list[MeshNetwork]) -> None:
        self.stash = pytest.Stash()
        self.stash[plugin._NETWORKS] = networks
        self.path = Path("test_x.py")
        self.location = ("test_x.py", 7, "test_x")


class _Call:
    when = "call"
    excinfo = None


def _report_after_hook(item: _Item) -> pytest.TestReport:
    report = pytest.TestReport(
        "test_x.py::test_x", ("test_x.py", 7, "test_x"), {}, "failed", "boom", "call"
    )
    hook = plugin.pytest_runtest_makereport(item, _Call())  # type: ignore[arg-type]
    next(hook)
    with pytest.raises(StopIteration) as done:
        hook.send(report)
    return done.value.value  # type: ignore[no-any-return]


async def test_failures_on_a_slow_machine_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with trio.open_nursery() as nursery:
        slow = MeshNetwork(nursery, tmp_path)
        slow._lag._samples.append((trio.current_time(), 2.0, 0.5))
        slow._lag.max_lag = 2.0
        report = _report_after_hook(_Item([slow]))
        assert report.failed
        assert [title for title, _ in report.sections] == ["machine too slow"]
        assert "lagged up to 2.00 s" in report.sections[0][1]

        monkeypatch.setenv("CHORUS_MESH_TOO_SLOW", "skip")
        assert _report_after_hook(_Item([slow])).skipped
        # A failure on a machine that kept up stays a plain failure.
        fine = MeshNetwork(nursery, tmp_path / "fine")
        report = _report_after_hook(_Item([fine]))
        assert report.failed and not report.sections
        nursery.cancel_scope.cancel()


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy and TYPE_CHECKING imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_toolkits_parts_do_not_import_the_toolkit_back() -> None:
    # devnet.testing is the top: it re-exports its parts and imports the rogue peer, so a
    # part (or the rogue peer) importing devnet.testing would close an import circle.
    devnet = Path(__file__).resolve().parents[2] / "devnet"
    parts = sorted([*devnet.glob("sim_*.py"), *devnet.glob("rogue*.py")])
    assert devnet / "rogue.py" in parts
    for part in parts:
        assert "devnet.testing" not in _imported_modules(part), part.name
    # Likewise devnet.rogue over its own parts (devnet/rogue_*.py).
    for part in devnet.glob("rogue_*.py"):
        assert "devnet.rogue" not in _imported_modules(part), part.name
