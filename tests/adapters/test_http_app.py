"""The endpoints through quart's test client: JSON shapes, status codes, auth, robustness."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from quart_trio import QuartTrio

from adapters.http_app import add_cluster_routes, create_app
from adapters.metrics import HealthMetrics
from mesh.cluster_page import EVERY, ClusterPage
from mesh.flap import Thresholds
from mesh.manager import CheckManager
from mesh.messages import MemberState
from mesh.model import CheckResult, HealthCheck
from mesh.wire_json import health_json

EPOCH = 1_759_228_200.0


def checker(result: CheckResult) -> Callable[[], object]:
    async def run() -> CheckResult:
        return result

    return run


def node(token: str | None = None) -> tuple[CheckManager, QuartTrio, CollectorRegistry]:
    manager = CheckManager(
        node_id="node-123",
        version="v1.0.0",
        thresholds=Thresholds(fail_after=1, pass_after=1),
        wall_clock=lambda: EPOCH + trio.current_time(),
    )
    registry = CollectorRegistry()
    HealthMetrics(registry, manager)
    return manager, create_app(manager, registry, token=token), registry


async def run_all(manager: CheckManager) -> None:
    for check in manager.checks:
        await manager.run_check(check)


async def test_health_matches_the_reference_shape(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()
    manager.register(
        HealthCheck(
            "p2p-connectivity",
            checker(CheckResult.ok("5 peers connected", connected_peers=5, min_peers=3)),
            critical=True,
        )
    )
    await trio.sleep(86400)
    await run_all(manager)
    response = await app.test_client().get("/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert list(body) == [
        "status",
        "message",
        "checks",
        "uptime",
        "start_time",
        "last_update",
        "version",
        "node_id",
    ]
    assert body["status"] == "healthy"
    assert body["message"] == "All health checks passing"
    assert body["uptime"] == 86_400_000_000_000
    assert body["start_time"] == "2025-09-30T10:30:00Z"
    assert body["last_update"] == "2025-10-01T10:30:00Z"
    assert body["version"] == "v1.0.0"
    assert body["node_id"] == "node-123"
    assert body["checks"] == {
        "p2p-connectivity": {
            "healthy": True,
            "message": "5 peers connected",
            "details": {"connected_peers": 5, "min_peers": 3},
            "latency": 0,
            "timestamp": "2025-10-01T10:30:00Z",
        }
    }


@pytest.mark.parametrize(
    ("critical_ok", "minor_ok", "status", "health_code", "ready"),
    [
        (True, True, "healthy", 200, True),
        (True, False, "degraded", 200, True),
        (False, True, "unhealthy", 503, False),
    ],
)
async def test_status_codes(
    autojump_clock: trio.testing.MockClock,
    critical_ok: bool,
    minor_ok: bool,
    status: str,
    health_code: int,
    ready: bool,
) -> None:
    manager, app, _ = node()
    manager.register(HealthCheck("db", checker(CheckResult(critical_ok, "db")), critical=True))
    manager.register(HealthCheck("disk", checker(CheckResult(minor_ok, "disk"))))
    await run_all(manager)
    client = app.test_client()
    health = await client.get("/health")
    assert (health.status_code, (await health.get_json())["status"]) == (health_code, status)
    readiness = await client.get("/health/ready")
    assert readiness.status_code == health_code
    assert (await readiness.get_json())["ready"] is ready
    liveness = await client.get("/health/live")
    assert liveness.status_code == 200  # only stopping fails liveness


async def test_starting_then_stopping(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()
    manager.register(HealthCheck("db", checker(CheckResult.ok("ok")), critical=True))
    client = app.test_client()
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert await response.get_json() == {
        "ready": False,
        "status": "starting",
        "message": "Waiting for first results: db",
    }
    await run_all(manager)
    await trio.sleep(3600 * 24 + 61)
    live = await client.get("/health/live")
    assert await live.get_json() == {"live": True, "status": "healthy", "uptime": "24h1m1s"}
    manager.begin_stopping()
    for path in ("/health", "/health/ready", "/health/live"):
        response = await client.get(path)
        assert response.status_code == 503, path
        assert (await response.get_json())["status"] == "stopping"


async def test_checks_endpoint_shows_configuration(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()
    manager.register(
        HealthCheck(
            "db",
            checker(CheckResult.fail("down", error="refused")),
            description="primary db",
            critical=True,
            interval=15,
            timeout=5,
        )
    )
    manager.register(HealthCheck("later", checker(CheckResult.ok("ok")), enabled=False))
    await manager.run_check(manager.get("db"))
    body = await (await app.test_client().get("/health/checks")).get_json()
    assert body["total"] == 2
    assert body["timestamp"] == "2025-09-30T10:30:00Z"
    assert body["checks"]["db"] == {
        "healthy": False,
        "message": "down",
        "latency": 0,
        "timestamp": "2025-09-30T10:30:00Z",
        "error": "refused",
        "description": "primary db",
        "enabled": True,
        "critical": True,
        "interval": 15_000_000_000,
        "timeout": 5_000_000_000,
        "last_run": "2025-09-30T10:30:00Z",
        "state": "failing",
        "consecutive_failures": 1,
        "consecutive_successes": 0,
    }
    assert body["checks"]["later"]["enabled"] is False
    assert body["checks"]["later"]["last_run"] is None
    assert "healthy" not in body["checks"]["later"]


async def test_history_endpoint(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()
    outcomes = iter([True, False, True])

    async def flips() -> CheckResult:
        return CheckResult(next(outcomes), "flip")

    manager.register(HealthCheck("flip", flips))
    manager.register(HealthCheck("other", checker(CheckResult.ok("ok"))))
    for _ in range(3):
        await manager.run_check(manager.get("flip"))
        await trio.sleep(10)
    await manager.run_check(manager.get("other"))
    client = app.test_client()
    body = await (await client.get("/health/history?check=flip&limit=2")).get_json()
    assert body == {
        "transitions": [
            {
                "check": "flip",
                "from": "failing",
                "to": "passing",
                "timestamp": "2025-09-30T10:30:20Z",
                "message": "flip",
                "consecutive": 1,
            },
            {
                "check": "flip",
                "from": "passing",
                "to": "failing",
                "timestamp": "2025-09-30T10:30:10Z",
                "message": "flip",
                "consecutive": 1,
            },
        ],
        "total": 2,
    }
    assert (await (await client.get("/health/history")).get_json())["total"] == 4
    assert (await client.get("/health/history?check=nope")).status_code == 404
    for good in ("1", "0001", "1000"):
        assert (await client.get(f"/health/history?limit={good}")).status_code == 200, good


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=x",
        "limit=1001",
        "limit=-1",
        "limit=",
        "limit=+5",
        "limit=%205",
        "limit=5%20",
        "limit=1e2",
        "limit=00001",
        "limit=" + "9" * 40,
        # str.isdigit() and int() take these; an ASCII-only rule must not.
        "limit=%C2%B2",  # superscript two: isdigit() says yes, int() raises
        "limit=%C2%B9%E2%81%B0",  # superscript one, zero
        "limit=%EF%BC%91%EF%BC%90",  # fullwidth 10: int() gives 10
        "limit=%D9%A3",  # Arabic-Indic three: int() gives 3
        "limit=%FF",  # not UTF-8 at all
        "limit=5&limit=2000",  # which one counts depends on who reads it: neither
        "check=",
        "check=" + "x" * 300,
        "check=flip&check=other",
    ],
)
async def test_history_rejects_malformed_queries(
    autojump_clock: trio.testing.MockClock, query: str
) -> None:
    manager, app, _ = node()
    manager.register(HealthCheck("flip", checker(CheckResult.ok("ok"))))
    manager.register(HealthCheck("other", checker(CheckResult.ok("ok"))))
    await run_all(manager)
    response = await app.test_client().get(f"/health/history?{query}")
    assert response.status_code == 400, query
    body = await response.get_json()
    assert body["code"] == 400
    field = query.partition("=")[0]
    assert body["error"].startswith(f"{field} "), body
    assert len(body["error"]) < 200  # never echoes a long value back


class FakeCluster:
    def __init__(self, peers: dict[str, dict[str, Any]]) -> None:
        self.peers = peers
        self.asked: list[ClusterPage] = []

    def cluster_json(self, now: float | None = None, page: ClusterPage = EVERY) -> dict[str, Any]:
        self.asked.append(page)
        return {"peers": list(self.peers.values())}

    def peer_json(self, peer_id: str) -> dict[str, Any] | None:
        return self.peers.get(peer_id)


async def test_cluster_peer_route_rejects_malformed_peer_ids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = "12D3KooWGzBLzC8x1BhKpnQHPYNWZDrrG3nTVFRnWwTbWfmkwTwH"
    _, app, _ = node()
    add_cluster_routes(app, FakeCluster({peer: {"peer_id": peer}}))
    client = app.test_client()
    assert await (await client.get(f"/health/cluster/{peer}")).get_json() == {"peer_id": peer}
    assert (await client.get("/health/cluster/12D3KooWnobody")).status_code == 404
    for bad in ("x" * 200, "bad%20id", "12D3KooW%C2%B2", "%00", "a.b"):
        response = await client.get(f"/health/cluster/{bad}")
        assert response.status_code == 400, bad
        error = (await response.get_json())["error"]
        assert error.startswith("peer id "), error
        assert len(error) < 200


async def test_cluster_route_passes_the_page_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, app, _ = node()
    cluster = FakeCluster({})
    add_cluster_routes(app, cluster)
    client = app.test_client()
    assert (await client.get("/health/cluster")).status_code == 200
    response = await client.get("/health/cluster?state=dead,suspect&limit=2&after=12D3KooWx")
    assert response.status_code == 200
    dead_or_suspect = frozenset({MemberState.DEAD, MemberState.SUSPECT})
    assert cluster.asked == [EVERY, ClusterPage(dead_or_suspect, "12D3KooWx", 2)]


@pytest.mark.parametrize(
    "query",
    [
        "state=bogus",
        "state=alive,",
        "state=" + "alive," * 200 + "dead",
        "limit=0",
        "limit=1001",
        "limit=%C2%B2",
        "limit=" + "9" * 300,
        "after=bad%20id",
        "after=" + "x" * 200,
        "limit=1&limit=2",
        "state=dead&state=alive",
    ],
)
async def test_cluster_route_refuses_bad_pages(
    query: str, autojump_clock: trio.testing.MockClock
) -> None:
    _, app, _ = node()
    cluster = FakeCluster({})
    add_cluster_routes(app, cluster)
    response = await app.test_client().get(f"/health/cluster?{query}")
    assert response.status_code == 400, query
    error = (await response.get_json())["error"]
    assert error.startswith(query.partition("=")[0] + " "), error
    assert len(error) < 200
    assert cluster.asked == []


async def test_token_guards_detailed_endpoints_only(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node(token="s3cret")
    manager.register(HealthCheck("db", checker(CheckResult.ok("ok"))))
    await run_all(manager)
    client = app.test_client()
    for path in ("/health/checks", "/health/history"):
        denied = await client.get(path)
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        odd = await client.get(path, headers={"Authorization": "Bearer s3crét"})
        assert odd.status_code == 401
        allowed = await client.get(path, headers={"Authorization": "Bearer s3cret"})
        assert allowed.status_code == 200
    for path in ("/health", "/health/ready", "/health/live", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


SECRET_BITS = ("12D3KooWSecretPeer", "/var/lib/chorus/private", "ECONNREFUSED 10.0.0.7")


def leaky_node(token: str | None) -> tuple[CheckManager, QuartTrio]:
    """A node whose checks put peer ids, paths and error text in their results."""
    manager, app, _ = node(token=token)

    async def slow_dht() -> CheckResult:
        await trio.sleep(0.25)  # a latency worth hiding: it measures the network
        return CheckResult.fail(
            f"peer {SECRET_BITS[0]} did not answer",
            error=SECRET_BITS[2],
            peer=SECRET_BITS[0],
        )

    manager.register(HealthCheck("dht", slow_dht, critical=True))
    manager.register(
        HealthCheck("disk", checker(CheckResult.ok("disk ok", path=SECRET_BITS[1], used=0.4)))
    )
    return manager, app


async def test_open_health_hides_check_results_from_strangers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    manager, app = leaky_node(token="s3cret")
    await run_all(manager)
    full = health_json(manager.status())
    client = app.test_client()
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer s3crét"},
        {"Authorization": "Basic s3cret"},
        {"Authorization": "s3cret"},
    ):
        response = await client.get("/health", headers=headers)
        # The probe keeps its meaning: same code, same status, no 401.
        assert response.status_code == 503, headers
        assert "Authorization" in response.headers["Vary"]
        raw = await response.get_data(as_text=True)
        for secret in SECRET_BITS:
            assert secret not in raw, (headers, secret)
        body = await response.get_json()
        assert list(body) == list(full)
        # The overall message only names checks, which the entries name anyway, and
        # /health/ready already says it to anyone.
        assert body["message"] == "Critical checks failing: dht"
        ready = await (await client.get("/health/ready", headers=headers)).get_json()
        assert body["message"] == ready["message"]
        assert {k: body[k] for k in body if k != "checks"} == {
            k: full[k] for k in full if k != "checks"
        }
        # Each result was taken after dht's 0.25 s run.
        assert body["checks"] == {
            "dht": {
                "healthy": False,
                "message": "",
                "latency": 0,
                "timestamp": "2025-09-30T10:30:00.25Z",
            },
            "disk": {
                "healthy": True,
                "message": "",
                "latency": 0,
                "timestamp": "2025-09-30T10:30:00.25Z",
            },
        }
    allowed = await client.get("/health", headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 503
    body = await allowed.get_json()
    assert body == full
    assert body["checks"]["dht"]["error"] == SECRET_BITS[2]
    assert body["checks"]["dht"]["latency"] == 250_000_000
    assert body["checks"]["disk"]["details"] == {"path": SECRET_BITS[1], "used": 0.4}


async def test_open_health_is_whole_without_a_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    manager, app = leaky_node(token=None)
    await run_all(manager)
    response = await app.test_client().get("/health")
    assert response.status_code == 503
    assert await response.get_json() == health_json(manager.status())
    assert "Vary" not in response.headers


async def test_failed_runs_are_counted_by_a_bounded_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    manager, app, registry = node()

    async def raises() -> CheckResult:
        # Free text from elsewhere (a peer's address, its message): never a label value.
        raise ConnectionError("12D3KooWEvil said: <script>")

    manager.register(HealthCheck("raises", raises))
    manager.register(HealthCheck("full", checker(CheckResult.fail("full", error="ENOSPC /x"))))
    await run_all(manager)
    sample = registry.get_sample_value
    assert (
        sample("chorus_health_checks_failed_total", {"check_name": "raises", "reason": "exception"})
        == 1
    )
    assert (
        sample("chorus_health_checks_failed_total", {"check_name": "full", "reason": "unhealthy"})
        == 1
    )
    body = (await (await app.test_client().get("/metrics")).get_data()).decode()
    reasons = set(
        re.findall(r'^chorus_health_checks_failed_total\{[^}]*reason="([^"]*)"', body, re.M)
    )
    assert reasons == {"exception", "unhealthy"}
    assert "12D3KooWEvil" not in body and "ENOSPC" not in body


async def test_metrics_exposition(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, registry = node()
    manager.register(HealthCheck("db", checker(CheckResult.ok("ok")), critical=True))
    manager.register(HealthCheck("disk", checker(CheckResult.fail("full")), component="storage"))
    await run_all(manager)
    await run_all(manager)
    sample = registry.get_sample_value
    assert sample("chorus_health_checks_passed_total", {"check_name": "db"}) == 2
    failed = {"check_name": "disk", "reason": "unhealthy"}
    assert sample("chorus_health_checks_failed_total", failed) == 2
    assert sample("chorus_health_check_duration_seconds_count", {"check_name": "db"}) == 2
    assert sample("chorus_component_health_score", {"component": "storage"}) == 0.0
    assert sample("chorus_component_health_score", {"component": "db"}) == 1.0
    # db (critical, weight 2) passing, storage (weight 1) failing.
    assert sample("chorus_system_health_score") == pytest.approx(2 / 3)
    assert sample("chorus_health_status", {"status": "degraded"}) == 1.0
    assert sample("chorus_health_status", {"status": "healthy"}) == 0.0
    assert sample("chorus_health_check_passing", {"check_name": "disk", "critical": "false"}) == 0
    assert (
        sample("chorus_health_check_transitions_total", {"check_name": "db", "to": "passing"}) == 1
    )
    response = await app.test_client().get("/metrics")
    assert response.status_code == 200
    media_type, params = _parse_media_type(response.headers["Content-Type"])
    assert media_type == "text/plain" and params["charset"] == "utf-8"
    assert params["version"] == CONTENT_TYPE_LATEST.split("version=")[1].split(";")[0]
    assert b"chorus_system_health_score" in await response.get_data()


def _parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Go's mime.ParseMediaType, which Prometheus 3 uses on a scrape's Content-Type: a
    parameter named twice is an error ("duplicate parameter name"), the scrape fails."""
    media_type, *parts = [part.strip() for part in value.split(";")]
    params: dict[str, str] = {}
    for part in parts:
        key, sep, val = part.partition("=")
        assert sep, f"malformed parameter {part!r} in {value!r}"
        key = key.strip().lower()
        assert key not in params, f"duplicate parameter {key!r} in {value!r}"
        params[key] = val.strip()
    return media_type.lower(), params


async def test_endpoints_answer_while_a_check_hangs(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()

    async def hangs() -> CheckResult:
        await trio.sleep_forever()
        raise AssertionError

    manager.register(HealthCheck("hangs", hangs, timeout=10))
    manager.register(HealthCheck("garbage", checker("not a result")))  # type: ignore[arg-type]
    client = app.test_client()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await trio.sleep(1)
        response = await client.get("/health")
        assert response.status_code == 503
        body = await response.get_json()
        assert body["status"] == "starting"
        assert body["checks"]["garbage"]["message"] == "check returned str, expected CheckResult"
        await trio.sleep(10)
        body = await (await client.get("/health")).get_json()
        assert body["checks"]["hangs"]["error"] == "timeout"
        assert body["status"] == "degraded"
        nursery.cancel_scope.cancel()


async def test_odd_details_never_break_an_endpoint(autojump_clock: trio.testing.MockClock) -> None:
    manager, app, _ = node()
    odd = CheckResult(True, "odd", details={"obj": object(), "nan": float("nan"), 3: {1, 2}})
    manager.register(HealthCheck("odd", checker(odd)))
    await run_all(manager)
    response = await app.test_client().get("/health")
    assert response.status_code == 200
    details = (await response.get_json())["checks"]["odd"]["details"]
    assert details["nan"] == "nan"
    assert details["3"] == [1, 2]
    assert details["obj"].startswith("<object object")


async def test_unknown_paths_and_methods_answer_json(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, app, _ = node()
    client = app.test_client()
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert (await missing.get_json())["error"] == "no endpoint at /nope"
    assert (await client.post("/health")).status_code == 405
