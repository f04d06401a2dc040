"""The README's examples run as written, so CI runs what users copy: the simulation example
is tests/sim/test_example.py, and the embedding example runs here as a program of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMBEDDING = "### Embedding a node in your trio program"


def readme_example(heading: str) -> str:
    """The first python block after ``heading`` (the marker) in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"{heading!r} has no python example"
    return match.group(1)


def test_readme_simulation_example_is_the_tested_one() -> None:
    example = readme_example("## Write your own simulation")
    tested = (ROOT / "tests/sim/test_example.py").read_text()
    # The tested file adds only its docstring and the __future__ import on top.
    assert tested.endswith(example), "README example and tests/sim/test_example.py differ"


def test_the_embedding_example_closes_the_configuration_section() -> None:
    readme = (ROOT / "README.md").read_text()
    configuration, built_in = readme.index("\n## Configuration"), readme.index("\n## Built-in")
    assert configuration < readme.index(EMBEDDING) < built_in
    assert "\n## " not in readme[readme.index(EMBEDDING) : built_in]


@pytest.mark.network
def test_readme_embedding_example_runs_as_written(tmp_path: Path) -> None:
    # Saved to a file and run with this Python, as a reader would: its own process, so its
    # trio.run, its sockets and its threads are its own.
    script = tmp_path / "embedding.py"
    script.write_text(readme_example(EMBEDDING))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,  # a hang (a node that does not stop) fails here
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "forcing exit" not in done.stderr, done.stderr
    started_line, check_line, status_line, in_status, stopped_line = done.stdout.splitlines()

    # A real node on loopback, on ports the system picked.
    match = re.fullmatch(
        r"node (12D3KooW\w+) on http://127\.0\.0\.1:(\d+)"
        r" and /ip4/127\.0\.0\.1/tcp/(\d+)/p2p/(\w+)",
        started_line,
    )
    assert match, started_line
    peer, http_port, p2p_port, listen_peer = match.groups()
    assert peer == listen_peer
    assert {int(http_port), int(p2p_port)}.isdisjoint({0, 8081, 9000})

    # The custom check ran, and the node left "starting" with it counted.
    assert check_line == "job-queue: passing - 3 jobs waiting"
    status, _, message = status_line.removeprefix("node status: ").partition(" - ")
    # Alone, its network checks fail, which the devnet profile makes non-critical.
    assert status == "degraded", status_line
    assert "job-queue" not in message
    assert in_status == "job-queue in it: 3 jobs waiting"
    assert stopped_line == "stopped: stopping"
    # Start, one round of checks (the network ones 2 s after start) and a clean stop within
    # shutdown_timeout; the rest is the interpreter importing py-libp2p.
    assert elapsed < 60, f"the example took {elapsed:.1f}s"
    # The data directory was the example's own temporary one: nothing left in the cwd.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding.py"]
