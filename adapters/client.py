"""A small HTTP client for a node's endpoints, and the parsed form of its cluster view.

Used by ``chorus-health members|checks|status`` (adapters/members_cli.py) and by the devnet
(devnet/cluster.py). Standard library only: an operator's tool must run wherever the node
runs, with nothing more installed.

Every failure crosses in as one of three exceptions, so a caller can map each to an exit
code and a single line: :class:`NodeUnreachable` (nothing answered: refused, timed out,
no such host), :class:`TokenRefused` (HTTP 401 or 403 on a guarded endpoint) and
:class:`BadAnswer` (something answered, but not with what a node serves there).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_NODE_URL",
    "HTTP_TIMEOUT",
    "MAX_ANSWER_BYTES",
    "BadAnswer",
    "ClientError",
    "ClusterView",
    "NodeClient",
    "NodeUnreachable",
    "PeerView",
    "TokenRefused",
    "fetch_json",
    "normalize_url",
]

# The node's defaults (mesh.config.NodeConfig: health_host 127.0.0.1, health_port 8081).
DEFAULT_NODE_URL = "http://127.0.0.1:8081"
HTTP_TIMEOUT = 5.0  # seconds per request: a node answers from its cache in milliseconds

# The most a node's answer may be: /health/cluster at 10,000 members is about 5 MB.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A node never redirects. urllib would follow one with our Authorization header on,
    to whatever host it names: whoever answers at --node could collect the token."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx: a bad answer


# No proxy: nodes are addressed directly (a pod IP, loopback through a port-forward), and an
# HTTP_PROXY meant for the internet would swallow 127.0.0.1 when no_proxy does not list it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class ClientError(Exception):
    """Asking a node failed; ``str()`` is one line naming the node."""

    def __init__(self, url: str, reason: str, code: int = 0) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.code = code  # the HTTP status, 0 when nothing answered


class NodeUnreachable(ClientError):
    """Nothing answered: connection refused, timed out, unknown host."""


class TokenRefused(ClientError):
    """HTTP 401 or 403: the endpoint needs the node's bearer token, and ours is wrong or
    missing."""


class BadAnswer(ClientError):
    """Something answered, but not as a node does (not JSON, an unexpected status, a body
    of the wrong shape): another service on that port, or a node too old for the endpoint."""


def normalize_url(raw: str) -> str:
    """``host:port`` or ``http://host:port/`` as ``http://host:port`` (no trailing slash)."""
    url = raw.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def fetch_json(
    url: str, *, token: str | None = None, timeout: float = HTTP_TIMEOUT
) -> tuple[int, Any]:
    """GET a JSON endpoint: (HTTP status, decoded body), whatever the status.

    A body that is not JSON comes back as text. Raises :class:`NodeUnreachable` when
    nothing answered.
    """
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _decode(_read(url, response))
    except urllib.error.HTTPError as error:
        return error.code, _decode(_read(url, error))
    except (OSError, ValueError) as exc:
        # URLError wraps the socket error in .reason; a timeout may arrive bare.
        reason: object = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            text = f"no answer within {timeout:g}s"
        elif isinstance(reason, OSError) and reason.strerror:
            text = reason.strerror.lower()
        else:
            text = str(reason) or type(exc).__name__
        raise NodeUnreachable(url, f"cannot reach the node: {text}") from exc


def _read(url: str, response: Any) -> bytes:
    raw: bytes = response.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        raise BadAnswer(url, f"answer over {MAX_ANSWER_BYTES // 2**20} MiB: not a node's")
    return raw


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than a node nests
        return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class PeerView:
    """One member of a node's ``GET /health/cluster`` (mesh/cluster_json.py)."""

    peer_id: str
    is_self: bool
    state: str  # alive | suspect | dead | left: the observer's verdict
    status: str | None  # what the member says of itself
    score: float | None
    last_seen_age: float | None  # seconds; None for the observer itself
    http_addr: str | None = None
    p2p_addrs: tuple[str, ...] = ()
    version: str | None = None
    incarnation: int = 0
    suspected_by: tuple[str, ...] = ()
    local_health: int = 0  # what it says of its own timing: above 0 it is starved


@dataclass(frozen=True)
class ClusterView:
    """One node's ``GET /health/cluster``."""

    node_id: str
    status: str | None  # the view's overall cluster status
    score: float | None
    admin: str | None
    peers: tuple[PeerView, ...]
    timestamp: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> ClusterView:
        """Parse the body; raises ValueError when it is not a cluster view."""
        if not isinstance(body, dict) or not isinstance(body.get("peers"), list):
            raise ValueError("not a cluster view: no peers list")
        peers = tuple(
            PeerView(
                peer_id=str(peer["peer_id"]),
                is_self=bool(peer.get("self", False)),
                state=str(peer.get("state", "?")),
                status=_text_or_none(peer.get("status")),
                score=_float_or_none(peer.get("score")),
                last_seen_age=_float_or_none(peer.get("last_seen_age")),
                http_addr=_text_or_none(peer.get("http_addr")),
                p2p_addrs=tuple(str(a) for a in peer.get("p2p_addrs") or ()),
                version=_text_or_none(peer.get("version")),
                incarnation=int(peer.get("incarnation") or 0),
                suspected_by=tuple(str(p) for p in peer.get("suspected_by") or ()),
                local_health=int(peer.get("local_health") or 0),
            )
            for peer in body["peers"]
            if isinstance(peer, dict) and "peer_id" in peer
        )
        return cls(
            node_id=str(body.get("node_id", "")),
            status=_text_or_none(body.get("status")),
            score=_float_or_none(body.get("score")),
            admin=_text_or_none(body.get("admin")),
            peers=peers,
            timestamp=_text_or_none(body.get("timestamp")),
        )

    def state_of(self, peer_id: str) -> str | None:
        for peer in self.peers:
            if peer.peer_id == peer_id:
                return peer.state
        return None

    def alive(self) -> frozenset[str]:
        return frozenset(p.peer_id for p in self.peers if p.state == "alive")

    def counts(self) -> dict[str, int]:
        """Members per state, every state present (0 when none)."""
        out = dict.fromkeys(("alive", "suspect", "dead", "left"), 0)
        for peer in self.peers:
            out[peer.state] = out.get(peer.state, 0) + 1
        return out


def _float_or_none(raw: object) -> float | None:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def _text_or_none(raw: object) -> str | None:
    return None if raw is None else str(raw)


class NodeClient:
    """Ask one node over HTTP; ``token`` for the guarded endpoints (the node's
    ``--health-token``)."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = HTTP_TIMEOUT
    ) -> None:
        self.base_url = normalize_url(base_url)
        self.token = token
        self.timeout = timeout

    def get(self, path: str, *, ok: tuple[int, ...] = (200,)) -> tuple[int, dict[str, Any]]:
        """(status, JSON object) of ``path``; any status outside ``ok`` raises."""
        url = self.base_url + path
        code, body = fetch_json(url, token=self.token, timeout=self.timeout)
        if code in (401, 403):
            given = "refused" if self.token else "needed but none was given"
            raise TokenRefused(url, f"bad or missing token (HTTP {code}: token {given})", code)
        if code == 404 and not (isinstance(body, dict) and "error" in body):
            raise BadAnswer(url, "not a CHORUS health node (HTTP 404)", code)
        if code not in ok:
            detail = body.get("error") if isinstance(body, dict) else None
            what = f": {detail}" if detail else ""
            raise BadAnswer(url, f"unexpected answer HTTP {code}{what}", code)
        if not isinstance(body, dict):
            raise BadAnswer(url, f"not a CHORUS health node (HTTP {code}, not JSON)", code)
        return code, body

    def cluster(self) -> ClusterView:
        """GET /health/cluster, parsed."""
        _, body = self.get("/health/cluster")
        try:
            return ClusterView.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadAnswer(self.base_url + "/health/cluster", f"bad cluster view: {exc}") from exc

    def cluster_json(self) -> dict[str, Any]:
        """GET /health/cluster as the node sent it."""
        return self.get("/health/cluster")[1]

    def checks(self) -> dict[str, Any]:
        """GET /health/checks as the node sent it (latencies and intervals in nanoseconds)."""
        body = self.get("/health/checks")[1]
        if not isinstance(body.get("checks"), dict):
            raise BadAnswer(self.base_url + "/health/checks", "no checks in the answer")
        return body

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /health: (200 or 503, body). Without the token its checks are redacted."""
        code, body = self.get("/health", ok=(200, 503))
        if "status" not in body:
            raise BadAnswer(self.base_url + "/health", "no status in the answer", code)
        return code, body
