"""The node's HTTP face: a quart-trio app serving the reference's endpoints and /metrics.

Every handler reads the manager's cache; none runs a check. Status codes follow the
reference: /health and /health/ready answer 200 while healthy or degraded and 503 otherwise;
/health/live answers 503 only while stopping. With a token configured, the detailed
endpoints (``guarded``) need ``Authorization: Bearer <token>``; the probe endpoints and
/metrics stay open so Kubernetes and Prometheus need no secret. /health is open too, but
without the token its check entries keep only their ``healthy`` bit (``redacted``): check
messages, details and errors carry peer ids, addresses and paths.

Query and path values are checked with ASCII-only patterns of bounded length before use:
``str.isdigit()`` accepts "²" and "٣", and ``int()`` then raises or reads them as numbers.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import wraps
from typing import Any, ParamSpec, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from mesh.cluster_page import EVERY, ClusterPage, parse_page
from mesh.errors import CheckRegistrationError
from mesh.manager import CheckManager
from mesh.model import CheckResult, Status, SystemStatus
from mesh.timefmt import rfc3339
from mesh.wire_json import (
    check_entry_json,
    health_json,
    live_json,
    ready_json,
    transition_json,
)

P = ParamSpec("P")
Handler = Callable[P, Awaitable[Any]]

MAX_HISTORY_LIMIT = 1000
# ASCII digits only, at most four of them: 1..1000 needs no more, and a bounded length
# keeps int() from ever seeing a huge or non-ASCII string.
_LIMIT = re.compile(r"[0-9]{1,4}")
# Check names are chosen by code, not by peers; anything longer than this names no check.
MAX_CHECK_NAME = 128
# A peer id in its text form: base58 (12D3KooW..., Qm...) or base32 CIDs, so ASCII letters
# and digits; 128 leaves room for identity-multihash ids of larger keys.
_PEER_ID = re.compile(r"[0-9A-Za-z]{1,128}")


def create_app(
    manager: CheckManager, registry: CollectorRegistry, *, token: str | None = None
) -> QuartTrio:
    app = QuartTrio("chorus_health")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the reference's field order
    app.extensions["chorus.manager"] = manager
    app.extensions["chorus.token"] = token

    @app.get("/health")
    async def health() -> tuple[Response, int]:
        status = manager.status()
        code = 200 if status.status.serving else 503
        # Read where ``guarded`` reads it, so /health and the detailed endpoints never
        # disagree on whether a token is set.
        configured = app.extensions.get("chorus.token")
        if not configured:
            return jsonify(health_json(status)), code
        body = health_json(status if _authorized(configured) else redacted(status))
        response = jsonify(body)
        # One URL, two bodies: a shared cache must not hand the full one to a stranger.
        response.vary.add("Authorization")
        return response, code

    @app.get("/health/ready")
    async def ready() -> tuple[Response, int]:
        status, message = manager.decide()
        return jsonify(ready_json(status, message)), 200 if status.serving else 503

    @app.get("/health/live")
    async def live() -> tuple[Response, int]:
        status, _ = manager.decide()
        code = 503 if status is Status.STOPPING else 200
        return jsonify(live_json(status, manager.uptime())), code

    @app.get("/health/checks")
    @guarded
    async def checks() -> Response:
        entries = {
            check.name: check_entry_json(check, manager.flap_state(check.name))
            for check in sorted(manager.checks, key=lambda c: c.name)
        }
        return jsonify(
            {
                "checks": entries,
                "total": len(entries),
                "timestamp": rfc3339(manager.status().last_update),
            }
        )

    @app.get("/health/history")
    @guarded
    async def history() -> tuple[Response, int]:
        repeated = _repeated("check", "limit")
        if repeated is not None:
            return _error(400, f"{repeated} may be given only once")
        check = request.args.get("check")
        if check is not None and not 1 <= len(check) <= MAX_CHECK_NAME:
            return _error(400, f"check must name a check (1 to {MAX_CHECK_NAME} characters)")
        raw_limit = request.args.get("limit", "100")
        if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_HISTORY_LIMIT:
            return _error(400, f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}")
        if check is not None:
            try:
                manager.get(check)
            except CheckRegistrationError as exc:
                return _error(404, str(exc))
        entries = manager.history.recent(check=check, limit=int(raw_limit))
        return jsonify(
            {"transitions": [transition_json(t) for t in entries], "total": len(entries)}
        ), 200

    @app.get("/metrics")
    async def metrics() -> Response:
        # content_type, not mimetype: with mimetype Werkzeug appends a second charset,
        # and Prometheus 3 (Go's mime parser) refuses a parameter named twice.
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(404)
    async def not_found(_: Exception) -> tuple[Response, int]:
        return _error(404, f"no endpoint at {request.path}")

    @app.errorhandler(405)
    async def not_allowed(_: Exception) -> tuple[Response, int]:
        return _error(405, f"{request.method} is not allowed on {request.path}")

    return app


def add_json_route(
    app: QuartTrio, path: str, provide: Callable[[], Any], *, protected: bool = True
) -> None:
    """Serve ``provide()`` as JSON at ``path`` (behind the token unless ``protected`` is off)."""

    async def view() -> Response:
        return jsonify(provide())

    view.__name__ = "json_" + path.strip("/").replace("/", "_")
    app.add_url_rule(path, view_func=guarded(view) if protected else view, methods=["GET"])


class ClusterSource(Protocol):
    def cluster_json(
        self, now: float | None = None, page: ClusterPage = EVERY
    ) -> dict[str, Any]: ...

    def peer_json(self, peer_id: str) -> dict[str, Any] | None: ...


def add_cluster_routes(app: QuartTrio, cluster: ClusterSource) -> None:
    """GET /health/cluster (the known peers, filtered and paged by ``mesh.cluster_page``)
    and /health/cluster/<peer id> (one)."""

    @app.get("/health/cluster")
    @guarded
    async def cluster_view() -> tuple[Response, int]:
        names = ("state", "after", "limit")
        repeated = _repeated(*names)
        if repeated is not None:
            return _error(400, f"{repeated} may be given only once")
        try:
            page = parse_page(*(request.args.get(name) for name in names))
        except ValueError as exc:
            return _error(400, str(exc))
        return jsonify(cluster.cluster_json(page=page)), 200

    @app.get("/health/cluster/<peer_id>")
    @guarded
    async def cluster_peer(peer_id: str) -> tuple[Response, int]:
        if not _PEER_ID.fullmatch(peer_id):
            return _error(400, "peer id must be 1 to 128 ASCII letters and digits")
        body = cluster.peer_json(peer_id)
        if body is None:
            return _error(404, f"no peer {peer_id} in this node's cluster view")
        return jsonify(body), 200


def _repeated(*names: str) -> str | None:
    """The first of ``names`` the request gives more than once. A repeated parameter means
    what the reader picks (a proxy may check the last while we use the first): refuse it
    rather than choose."""
    return next((name for name in names if len(request.args.getlist(name)) > 1), None)


def guarded(handler: Handler[P]) -> Handler[P]:
    """Require the configured bearer token (if any) on a detailed endpoint."""

    @wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        from quart import current_app

        token = current_app.extensions.get("chorus.token")
        if token and not _authorized(token):
            response, code = _error(401, "this endpoint needs Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="chorus-health"'
            return response, code
        return await handler(*args, **kwargs)

    return wrapper


def _authorized(token: str) -> bool:
    """Whether this request carries ``Authorization: Bearer <token>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Constant-time comparison: the token must not leak through response timing.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def redacted(status: SystemStatus) -> SystemStatus:
    """``status`` as /health shows it to a caller without the token.

    Each check keeps its name, its ``healthy`` bit and when that was seen. Its message,
    details and error (peer ids, addresses, paths, errno text) go, and so does its latency
    (a network probe's latency measures the network). The shape stays the reference's
    CheckResult: ``message`` and ``latency`` take Go's zero values, ``details`` and
    ``error`` are omitted as when empty. The overall message stays: ``decide_status``
    builds it from the status and check names only, and /health/ready says it openly.
    """
    checks = {
        name: CheckResult(healthy=result.healthy, timestamp=result.timestamp)
        for name, result in status.checks.items()
    }
    return replace(status, checks=checks)


def _error(code: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message, "code": code}), code
