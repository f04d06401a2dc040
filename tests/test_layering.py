"""Imports run one way: ``mesh`` < ``probes`` < ``adapters`` < ``devnet`` (issue 16).

``mesh`` is the pure core, ``probes`` the checks above it, ``adapters`` the edges (py-libp2p,
HTTP, the CLI) and ``devnet`` the tooling on top; a package may import those below it, never
one above. The interfaces a layer needs (pubsub, DHT, direct link) are owned by that layer
(``probes/ports.py``) and implemented above it (``adapters/pubsub.py``, ``dht.py``,
``libp2p_link.py``).
Every import counts: at module level, inside functions and under ``TYPE_CHECKING``, since
each is an arrow a reader must follow. Tests are exempt: they may import every layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("mesh", "probes", "adapters", "devnet")  # lowest first
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module] if node.module else base)
            elif node.module is not None:
                yield node.lineno, node.module


def layered_files() -> Iterator[Path]:
    for layer in LAYERS:
        yield from sorted((ROOT / layer).rglob("*.py"))


def is_upward(importer: str, target: str) -> bool:
    """Whether module ``importer`` importing ``target`` goes up the layers."""
    own, other = importer.split(".")[0], target.split(".")[0]
    return other in RANK and RANK[other] > RANK[own]


def upward_imports() -> list[str]:
    found = []
    for path in layered_files():
        for line, target in imported_modules(path):
            if is_upward(module_name(path), target):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return found


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules of ``package`` that import each other, directly or through others
    of the group (the strongly connected components of more than one module)."""
    paths = sorted((ROOT / package).rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        edges = graph.setdefault(module_name(path), set())
        for _, target in imported_modules(path):
            # "from pkg import mod" names the package; count the module when it is one.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module_name(path):
                edges.add(target)
    # Tarjan's algorithm; the packages are small enough for recursion.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_package_imports_a_higher_one() -> None:
    # mesh < probes < adapters < devnet: each entry is an arrow that runs upward.
    assert upward_imports() == []


@pytest.mark.parametrize("package", ["mesh", "probes", "adapters", "devnet"])
def test_no_import_cycles_within(package: str) -> None:
    assert import_cycles(package) == []


@pytest.mark.parametrize(
    ("importer", "target", "upward"),
    [
        ("probes.pubsub_probe", "adapters.pubsub", True),
        ("mesh.digest", "probes", True),
        ("adapters.node", "devnet.testing", True),
        ("adapters.node", "probes.pubsub_probe", False),
        ("devnet.rogue", "mesh.model", False),
        ("probes.local", "trio", False),
    ],
)
def test_the_rule_itself(importer: str, target: str, upward: bool) -> None:
    assert is_upward(importer, target) is upward
