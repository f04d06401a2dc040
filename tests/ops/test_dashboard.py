"""The dashboard at ``/``: self-contained, drawn by a real headless Chromium.

First against a stub ``/health/cluster`` whose answers the test chooses (every state and
status, a hostile peer, a view that changes between refreshes), then against a devnet of
real node processes: every node listed, a screenshot kept, and a killed node's row turning.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from adapters.dashboard import CONTENT_SECURITY_POLICY, DASHBOARD_HTML, add_dashboard
from adapters.dashboard_script import PAGE
from adapters.http_app import add_json_route
from tests.helpers import NodeProcess, http_get
from tests.ops import (
    ARTIFACTS,
    Rows,
    chromium,
    dashboard_rows,
    needs,
    poll_dashboard,
    start_devnet,
)

pytestmark = pytest.mark.network
browser = needs("chromium", "chromium")

TOKEN = "s3cret"
A, B, C, D = (f"12D3KooW{letter * 44}" for letter in "ABCD")


def member(peer_id: str, state: str, status: str, score: float, **extra: Any) -> dict[str, Any]:
    return {
        "peer_id": peer_id,
        "self": False,
        "state": state,
        "status": status,
        "score": score,
        "components": {"p2p": score, "dht": 1.0},
        "last_seen_age": 3.5,
        "incarnation": 1,
        "start_time": "2026-01-01T00:00:00Z",
        "version": "0.1.0",
        "http_addr": "127.0.0.1:8081",
        "p2p_addrs": ["/ip4/127.0.0.1/tcp/9000"],
        "suspected_by": [],
        "history": [],
    } | extra


def view(*peers: dict[str, Any], admin: str | None = A) -> dict[str, Any]:
    counts = {state: sum(p["state"] == state for p in peers) for state in STATES}
    return {
        "node_id": A,
        "status": "healthy",
        "score": 0.9,
        "admin": admin,
        "counts": counts,
        "peers": list(peers),
        "timestamp": "2026-01-01T00:00:00Z",
    }


STATES = ("alive", "suspect", "dead", "left")


@asynccontextmanager
async def stub_node(answer: Callable[[], dict[str, Any]]) -> AsyncIterator[str]:
    """The dashboard plus a token-guarded stub /health/cluster on a real socket; yields
    the base URL."""
    app = QuartTrio("stub")
    app.extensions["chorus.token"] = TOKEN
    add_dashboard(app)
    add_json_route(app, "/health/cluster", answer)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        yield binds[0]
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------ without browser


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: dict[str, str] = {}
        self._open = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v or "" for k, v in attrs if k in {"src", "href", "action", "srcset"}]
        self._open = tag if tag in {"script", "style"} else ""

    def handle_endtag(self, tag: str) -> None:
        self._open = ""

    def handle_data(self, data: str) -> None:
        # The parser may hand over a long script in several pieces.
        if self._open:
            self.inline[self._open] = self.inline.get(self._open, "") + data


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_page_loads_nothing_from_outside_the_node() -> None:
    app = QuartTrio("bare")
    add_dashboard(app)
    response = await app.test_client().get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    assert page == DASHBOARD_HTML
    refs = _Refs()
    refs.feed(page)
    # The only reference is the empty data: icon that stops a request for /favicon.ico.
    assert refs.refs == ["data:,"]
    assert not re.search(r"https?:|//[a-z]", page.replace("data:,", ""))
    # The browser enforces it: only these exact inline blocks run, fetch stays on this node.
    policy = response.headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert f"script-src {csp_hash(refs.inline['script'])}" in policy
    assert f"style-src {csp_hash(refs.inline['style'])}" in policy


# ------------------------------------------------------------------- Chromium, stub view


@browser
async def test_every_state_and_status_drawn_in_its_colour(tmp_path: Path) -> None:
    hostile = '<img src=x onerror="document.title=1">'
    answer = view(
        member(A, "alive", "healthy", 0.95, self=True, last_seen_age=0.0),
        member(B, "suspect", "degraded", 0.6, suspected_by=[A, C], version=hostile),
        member(C, "dead", "unhealthy", 0.1),
        member(D, "left", "stopping", 0.0),
    )
    async with stub_node(lambda: answer) as url:
        dom = await chromium(f"{url}/#token={TOKEN}", budget_ms=1000)
        shot = ARTIFACTS / "dashboard-every-state.png"
        await chromium(f"{url}/#token={TOKEN}", budget_ms=1000, screenshot=shot)
    rows, banner = dashboard_rows(dom)
    assert banner == ""
    assert {peer: (r["data-state"], r["data-status"]) for peer, r in rows.items()} == {
        A: ("alive", "healthy"),
        B: ("suspect", "degraded"),
        C: ("dead", "unhealthy"),
        D: ("left", "stopping"),
    }
    assert rows[A].get("data-admin") == "true" and "data-admin" not in rows[B]
    for word in ("alive", "suspect", "dead", "left", "healthy", "degraded", "unhealthy"):
        assert f'class="badge {word}"' in dom
    assert "suspected by 2" in dom
    # A peer's gossip is text, never markup: the hostile version string shows as written.
    assert "&lt;img src=x" in dom and "<img" not in dom


@browser
async def test_without_the_token_the_page_says_how_to_give_it() -> None:
    async with stub_node(lambda: view(member(A, "alive", "healthy", 1.0))) as url:
        rows, banner = dashboard_rows(await chromium(url + "/", budget_ms=1000))
    assert rows == {}
    assert "#token=" in banner


@browser
async def test_the_page_refreshes_itself() -> None:
    answers = iter(
        [view(member(B, "alive", "healthy", 1.0))] * 2
        + [view(member(B, "suspect", "degraded", 0.5))] * 2
    )
    last = view(member(B, "dead", "unhealthy", 0.0))
    served = 0

    def answer() -> dict[str, Any]:
        nonlocal served
        served += 1
        return next(answers, last)

    async with stub_node(answer) as url:
        # 9 s of virtual time at one fetch per 2 s: five fetches, one page load.
        rows, _ = dashboard_rows(await chromium(f"{url}/#token={TOKEN}", budget_ms=9000))
    assert served >= 5
    assert rows[B]["data-state"] == "dead"


def paging_stub(
    members: list[dict[str, Any]], asked: list[dict[str, str]]
) -> Callable[[], dict[str, Any]]:
    """/health/cluster's paging and state filter over ``members``, as mesh.cluster_page
    does them (members in peer ID order), noting each request's query."""
    whole = view(*members)

    def answer() -> dict[str, Any]:
        asked.append(dict(request.args))
        states = set(request.args.get("state", ",".join(STATES)).split(","))
        chosen = [m for m in members if m["state"] in states]
        limit = int(request.args.get("limit", len(chosen)))
        more = len(chosen) > limit
        page = {"total": len(chosen), "next": chosen[limit - 1]["peer_id"] if more else None}
        return whole | {"peers": chosen[:limit], "page": page}

    return answer


def numbered(count: int) -> list[str]:
    return sorted(f"12D3KooW{i:044d}" for i in range(count))


@browser
async def test_a_large_view_shows_its_first_page_and_every_member_not_alive() -> None:
    ids = numbered(PAGE + 100)
    dead = {ids[10], *ids[-3:]}  # one on the first page by peer ID, three past it
    members = [member(p, "dead" if p in dead else "alive", "healthy", 1.0) for p in ids]
    asked: list[dict[str, str]] = []
    async with stub_node(paging_stub(members, asked)) as url:
        dom = await chromium(f"{url}/#token={TOKEN}", budget_ms=1000)
    rows, banner = dashboard_rows(dom)
    assert banner == ""
    assert set(rows) == set(ids[:PAGE]) | dead
    assert dom.count(f'data-peer-id="{ids[10]}"') == 1  # on the first page and not alive: once
    assert {rows[p]["data-state"] for p in dead} == {"dead"}
    assert f"showing {PAGE + 3} of {PAGE + 100} members" in dom
    assert "and 4 of the 4 not alive" in dom
    assert {"limit": str(PAGE)} in asked
    assert {"state": "suspect,dead,left", "limit": str(PAGE)} in asked


@browser
async def test_minted_dead_members_do_not_push_the_suspects_off_the_page() -> None:
    # More dead members than a page, all sorting before the two genuine suspects.
    ids = numbered(2 * PAGE + 50)
    minted, suspects = set(ids[: PAGE + 20]), set(ids[-2:])
    members = [
        member(p, "dead" if p in minted else "suspect" if p in suspects else "alive", "x", 0.5)
        for p in ids
    ]
    asked: list[dict[str, str]] = []
    async with stub_node(paging_stub(members, asked)) as url:
        dom = await chromium(f"{url}/#token={TOKEN}", budget_ms=1000)
    rows, _ = dashboard_rows(dom)
    assert suspects <= set(rows)
    assert {rows[p]["data-state"] for p in suspects} == {"suspect"}
    assert f"of the {PAGE + 22} not alive (suspects first)" in dom
    assert {"state": "suspect", "limit": str(PAGE)} in asked


@browser
async def test_a_view_that_fits_one_page_is_fetched_once() -> None:
    asked: list[dict[str, str]] = []
    members = [member(A, "alive", "healthy", 1.0), member(B, "dead", "unhealthy", 0.0)]
    async with stub_node(paging_stub(members, asked)) as url:
        dom = await chromium(f"{url}/#token={TOKEN}", budget_ms=1000)
    assert set(dashboard_rows(dom)[0]) == {A, B}
    assert asked and all(a == {"limit": str(PAGE)} for a in asked)
    # The note stays empty and hidden (the large view's test sees it filled and shown).
    assert re.search(r'<div id="partial" class="muted" hidden(="")?></div>', dom)


def step(at: str, frm: str, to: str, cause: str) -> dict[str, str]:
    return {"at": at, "from": frm, "to": to, "cause": cause, "detail": ""}


@browser
async def test_each_member_shows_its_recent_transitions_and_the_hour_of_scores() -> None:
    flapping = member(
        B,
        "dead",
        "unhealthy",
        0.0,
        history=[  # newest first, as /health/cluster lists them
            step("2026-01-01T00:00:00Z", "suspect", "dead", "suspicion_timeout"),
            step("2025-12-31T23:59:50Z", "alive", "suspect", "ping_failed"),
            step("2025-12-31T23:55:00Z", "", "alive", "joined"),
            # What a peer could not have caused, but a page must survive: dropped unseen.
            {"at": "not a time", "to": "dead"},
            step("2025-12-31T23:54:00Z", "", "<img src=x>", "joined"),
        ],
    )
    answer = view(member(A, "alive", "healthy", 1.0, self=True), flapping)
    answer["score_history"] = [
        {"at": "2025-12-31T23:10:00Z", "score": 1.0},
        {"at": "2025-12-31T23:59:30Z", "score": 0.5},
        {"at": "garbage", "score": 0.1},
        {"at": "2026-01-01T00:00:00Z", "score": "high"},
    ]
    async with stub_node(lambda: answer) as url:
        dom = await chromium(f"{url}/#token={TOKEN}", budget_ms=1000)
        shot = ARTIFACTS / "dashboard-timeline.png"
        await chromium(f"{url}/#token={TOKEN}", budget_ms=1000, screenshot=shot)
    rows, _ = dashboard_rows(dom)
    # Oldest first; an unknown state is drawn as "unknown", never as the peer's words.
    assert rows[B]["data-marks"] == "unknown alive suspect dead"
    assert rows[A]["data-marks"] == ""
    for state in ("alive", "suspect", "dead"):
        assert f'data-to="{state}"' in dom
    assert "<img src=x>" not in dom and "&lt;img" not in dom
    assert "ping_failed" in dom  # the cause, in the mark's tooltip
    assert 'data-points="2"' in dom and "lowest 0.50 in the last hour" in dom


# ------------------------------------------------------------------ Chromium, real devnet


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()


async def cluster_ready(node: NodeProcess, count: int) -> Rows:
    """Wait until the node's dashboard lists ``count`` members, all alive."""
    code, _ = await http_get(node.url + "/")
    assert code == 200, f"GET / answered {code}: does adapters/node.py call add_dashboard(app)?"
    return await poll_dashboard(
        node.url + "/",
        lambda rows: len(rows) == count and all(r["data-state"] == "alive" for r in rows.values()),
        timeout=30,
        what=f"the dashboard to list {count} alive nodes",
    )


@browser
@pytest.mark.slow
async def test_dashboard_lists_every_devnet_node(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    nodes = await start_devnet(tmp_path, 3, processes)
    rows = await cluster_ready(nodes[1], 3)
    assert set(rows) == {node.peer_id for node in nodes}
    shot = ARTIFACTS / "dashboard-devnet.png"
    shot.unlink(missing_ok=True)
    await chromium(nodes[1].url + "/", budget_ms=3000, screenshot=shot)
    assert shot.stat().st_size > 10_000, "the screenshot should show the table"


@browser
@pytest.mark.slow
async def test_killed_node_row_changes(tmp_path: Path, processes: list[NodeProcess]) -> None:
    nodes = await start_devnet(tmp_path, 3, processes)
    watcher, victim = nodes[0], nodes[2]
    await cluster_ready(watcher, 3)
    victim.stop()  # SIGKILL: no leave notice, so the others must find out
    # Dead within seconds in the devnet profile, and listed so for a minute after.
    rows = await poll_dashboard(
        watcher.url + "/",
        lambda rows: rows.get(victim.peer_id, {}).get("data-state") == "dead",
        timeout=30,
        what="the killed node's row to turn dead",
    )
    assert rows[nodes[1].peer_id]["data-state"] == "alive"
    # Its timeline shows how it went: suspected first, then dead.
    marks = rows[victim.peer_id]["data-marks"].split()
    assert marks[-2:] == ["suspect", "dead"], marks
    await chromium(
        watcher.url + "/", budget_ms=3000, screenshot=ARTIFACTS / "dashboard-node-killed.png"
    )
