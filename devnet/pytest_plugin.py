"""pytest fixtures for mesh simulations (pytest-trio); see ``devnet.testing``.

Registered as the ``chorus_mesh`` plugin through the ``pytest11`` entry point, so a project
that installs chorus-health gets the fixtures in its own tests::

    async def test_something(mesh_network):
        net = await mesh_network(10)                 # 10 nodes, converged
        other = await mesh_network(3, processes=1)   # a second network, one process node

Fixtures:

- ``mesh_network``: a factory, ``await mesh_network(count=0, *, processes=0,
  topology="auto", converge=True, config=None, lag_limit=None, seed=0,
  inprocess_ping_timeout=5.0, **config_changes) -> MeshNetwork``. ``config_changes``
  replace fields of the node configuration (``probe_interval=5.0``). Every network lives
  until the test ends, in a directory under the test's ``tmp_path``; its nodes are stopped
  at teardown, without goodbyes.
- ``mesh_config``: the compact node configuration the factory starts from
  (``devnet.testing.sim_config()``); override the fixture in a conftest to change the
  defaults of every simulation there.

When a test fails after the machine could not keep up (the shared event loop lagged or
stayed saturated, or pings between in-process nodes timed out), its report gets a "machine
too slow" section saying so, whatever raised. With ``CHORUS_MESH_TOO_SLOW=skip`` such a
failure is reported as a skip instead (for a shared CI machine). The heavy imports wait
until a fixture is used, so merely installing the plugin costs other test runs nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

if TYPE_CHECKING:
    from devnet.testing import MeshNetwork
    from mesh.config import NodeConfig

__all__ = ["MeshFactory", "mesh_config", "mesh_network", "pytest_runtest_makereport"]

MeshFactory = Callable[..., Awaitable["MeshNetwork"]]

_NETWORKS = pytest.StashKey[list["MeshNetwork"]]()
_SECTION = "machine too slow"


@pytest.fixture
def mesh_config() -> NodeConfig:
    """The compact node configuration every ``mesh_network`` starts from."""
    from devnet.testing import sim_config

    return sim_config()


@pytest.fixture
async def mesh_network(
    request: pytest.FixtureRequest, tmp_path: Path, mesh_config: NodeConfig
) -> AsyncIterator[MeshFactory]:
    """Factory of simulated meshes; see the module docstring."""
    from dataclasses import replace

    from devnet.testing import INPROCESS_PING_TIMEOUT, MeshNetwork, start_network

    networks: list[MeshNetwork] = []
    request.node.stash[_NETWORKS] = networks
    async with trio.open_nursery() as nursery:

        async def make(
            count: int = 0,
            *,
            processes: int = 0,
            topology: Any = "auto",
            converge: bool = True,
            config: NodeConfig | None = None,
            lag_limit: float | None = None,
            seed: int = 0,
            inprocess_ping_timeout: float | None = INPROCESS_PING_TIMEOUT,
            admission: bool = False,
            **config_changes: Any,
        ) -> MeshNetwork:
            base = replace(config or mesh_config, **config_changes)
            net = MeshNetwork(
                nursery,
                tmp_path / f"mesh{len(networks)}",
                config=base,
                topology=topology,
                lag_limit=lag_limit,
                seed=seed,
                inprocess_ping_timeout=inprocess_ping_timeout,
                admission=admission,
            )
            networks.append(net)
            await start_network(net, count, processes=processes, converge=converge)
            return net

        try:
            yield make
        finally:
            with trio.CancelScope(shield=True):
                for net in networks:
                    await net.aclose()
            nursery.cancel_scope.cancel()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    slow = [net for net in item.stash.get(_NETWORKS, []) if net.too_slow]
    # Idempotent: a conftest may import this hook while the entry point loads it too.
    if not (report.failed and call.when == "call" and slow) or any(
        title == _SECTION for title, _ in report.sections
    ):
        return report
    from devnet.testing import MachineTooSlow

    text = slow[0].slowness_report()
    if os.environ.get("CHORUS_MESH_TOO_SLOW") == "skip":
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {text}")
    elif call.excinfo is None or not _contains(call.excinfo.value, MachineTooSlow):
        report.sections.append((_SECTION, text))
    return report


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is a ``kind``, or an exception group holding one (trio's nurseries
    wrap what a test raises)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return isinstance(exc, kind)
