"""Load the simulation fixtures (devnet/pytest_plugin.py) for these tests.

Once pyproject.toml registers the plugin (``[project.entry-points.pytest11]
chorus_mesh = "devnet.pytest_plugin"``) and the package is reinstalled, pytest loads it by
itself and this import is a harmless re-export.
"""

from __future__ import annotations

from devnet.pytest_plugin import mesh_config, mesh_network, pytest_runtest_makereport

__all__ = ["mesh_config", "mesh_network", "pytest_runtest_makereport"]
