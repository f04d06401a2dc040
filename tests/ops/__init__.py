"""Tests of the operations kit (ops/, adapters/dashboard.py) and the helpers they share.

The kit is checked with the tools operators run it with: promtool and Prometheus (Debian's
``prometheus``), headless Chromium (Debian's ``chromium``) and the Kubernetes schemas that
``kubernetes-validate`` bundles. ``ops/install-system-deps.sh`` installs the binaries; where
one is missing, its tests skip and say which package brings it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
import trio

from devnet.authority import LocalAuthority
from tests.helpers import PROJECT, NodeProcess, wait_until

OPS = PROJECT / "ops"
# Screenshots land here (gitignored) so a CI run or a person can look at what was shown.
ARTIFACTS = PROJECT / "test-artifacts"

# Probes every second, no drain on shutdown, loop lag tolerant of a busy 2-core CI machine.
DEVNET_FLAGS = (
    "--profile",
    "devnet",
    "--probe-interval",
    "1",
    "--drain-seconds",
    "0",
    "--loop-lag-threshold",
    "5",
)


def needs(binary: str, package: str) -> pytest.MarkDecorator:
    """Skip unless ``binary`` is on PATH, naming the Debian package that brings it. A mark,
    not pytest.skip() inside the test: pytest-trio loses the reason of a skip raised there.
    Under CI (CI=true) nothing is skipped: .ci/run installs the packages, and a test that
    skipped there would hide a missing install step behind a green run."""
    return pytest.mark.skipif(
        shutil.which(binary) is None and os.environ.get("CI", "") != "true",
        reason=f"{binary} not found: apt-get install {package} (ops/install-system-deps.sh)",
    )


async def start_devnet(base: Path, count: int, started: list[NodeProcess]) -> list[NodeProcess]:
    """``count`` node processes; each bootstraps to the first. Appends to ``started`` at once
    so the caller's fixture stops every process, even those of a start that failed."""
    # Admitted by an authority of their own, as the devnet and Kubernetes run them.
    authority = LocalAuthority(base)

    def flags(name: str) -> list[str]:
        return [*DEVNET_FLAGS, *authority.node_flags(base / name)]

    first = NodeProcess(base / "n0", *flags("n0"))
    started.append(first)
    first.start()
    await first.wait_listening()
    rest = [
        NodeProcess(base / f"n{i}", *flags(f"n{i}"), "--bootstrap-peers", first.p2p_addr)
        for i in range(1, count)
    ]
    for node in rest:
        started.append(node)
        node.start()
    for node in rest:
        await node.wait_listening()
    return [first, *rest]


# ------------------------------------------------------------------------------ Chromium

# The flags machines without a way out need: without the background-networking ones
# Chromium keeps dialling Google's hosts, and every refused connection costs start-up time.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,800",
)


async def chromium(url: str, *, budget_ms: int, screenshot: Path | None = None) -> str:
    """Load ``url`` in a fresh headless Chromium and return the DOM after ``budget_ms`` of
    virtual time (or take a screenshot instead). Virtual time stands still while a fetch is
    in flight and skips idle waits, so a budget of a few refresh periods runs the page's
    own polling a few times in well under a second of real time."""
    binary = shutil.which("chromium") or "chromium"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
        ]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            command.append(f"--screenshot={screenshot}")
        else:
            command.append("--dump-dom")
        with trio.fail_after(60):
            done = await trio.run_process(
                [*command, url], capture_stdout=True, capture_stderr=True, check=False
            )
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")[-2000:]
        raise AssertionError(f"chromium exited {done.returncode}: {stderr}")
    return str(done.stdout.decode())


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.banner = ""
        self._in_banner = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "tr" and "data-peer-id" in values:
            self.rows[values["data-peer-id"]] = values
        self._in_banner = values.get("id") == "banner" and "hidden" not in values

    def handle_data(self, data: str) -> None:
        if self._in_banner:
            self.banner += data


def dashboard_rows(dom: str) -> tuple[dict[str, dict[str, str]], str]:
    """The table rows the dashboard drew, by peer ID (their ``data-*`` attributes), and the
    text of its problem banner (empty while hidden)."""
    parser = _Rows()
    parser.feed(dom)
    return parser.rows, parser.banner.strip()


Rows = dict[str, dict[str, str]]


async def poll_dashboard(
    url: str, accept: Callable[[Rows], bool], *, timeout: float, what: str
) -> Rows:
    """Open the dashboard again and again until ``accept(rows)`` holds (bounded)."""
    rows: Rows = {}

    async def shown() -> bool:
        nonlocal rows
        rows, _ = dashboard_rows(await chromium(url, budget_ms=3000))
        return accept(rows)

    await wait_until(shown, timeout=timeout, poll=0.5, what=what)
    return rows


def run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A short synchronous tool run (promtool), its output kept for the assertion message."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
