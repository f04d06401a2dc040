"""The cluster dashboard: one self-contained HTML page at ``/`` on every node.

The page is static; its script (``adapters.dashboard_script``) fetches ``/health/cluster``
from the node that served it every ``REFRESH_MS`` and redraws one table row per member of
that node's cluster view: state (alive / suspect / dead / left) and self-reported status in
colour, score, component scores, last seen, incarnation, version and addresses, with the
elected admin marked. Each row ends with the member's recent past: its transitions (the
view's history, newest five) drawn on a ten-minute track, one coloured stretch per state and
a mark per change whose tooltip says when and why; above the table, the cluster score of the
last hour as a small chart (the node keeps it, ``mesh.score_history``, so a page opened now
still shows the past hour).

Everything is inline, so the page works where nodes have no way out (and loads nothing a
third party could change). A Content-Security-Policy built from the hashes of the inline
script and style makes the browser hold the page to that: no other script, style, image or
connection than ``/health/cluster`` on this node.

Peer data comes from gossip, so a hostile peer chooses its own ``version`` and addresses:
the script writes every value with ``textContent``, never as HTML.

With ``--health-token`` set, ``/health/cluster`` needs a bearer token; open the page as
``/#token=<token>``. The fragment never leaves the browser: the script sends it as an
``Authorization`` header on its own requests only.
"""

from __future__ import annotations

import base64
import hashlib

from quart import Response
from quart_trio import QuartTrio

from adapters.dashboard_script import SCRIPT

__all__ = ["CONTENT_SECURITY_POLICY", "DASHBOARD_HTML", "add_dashboard"]

_STYLE = """
:root { color-scheme: light; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
        --idle: #6e7781; --info: #0969da; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
header { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: baseline;
         padding: 12px 20px; background: var(--bg); border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
main { padding: 12px 20px; }
code { font: 12px ui-monospace, monospace; white-space: nowrap; }
.chips span { display: inline-block; padding: 1px 8px; margin-right: 4px; border-radius: 10px;
              color: #fff; font-weight: 600; }
#banner { padding: 8px 20px; background: #fff8c5; border-bottom: 1px solid #d4a72c; }
#banner[hidden] { display: none; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; background: var(--bg); }
.badge { display: inline-block; min-width: 64px; padding: 1px 8px; border-radius: 10px;
         color: #fff; font-weight: 600; text-align: center; }
.alive, .healthy { background: var(--ok); }
.suspect, .degraded { background: var(--warn); }
.dead, .unhealthy { background: var(--bad); }
.left, .stopping, .unknown { background: var(--idle); }
.starting { background: var(--info); }
tr.row-dead td, tr.row-left td { color: var(--idle); }
tr.row-suspect { background: #fff8c5; }
tr.row-dead { background: #ffebe9; }
.tag, .age { white-space: nowrap; }
.tag { margin-left: 6px; padding: 0 6px; border-radius: 8px; font-size: 12px;
       border: 1px solid var(--info); color: var(--info); }
.bar { display: inline-block; width: 60px; height: 8px; margin-left: 6px;
       background: var(--line); border-radius: 4px; overflow: hidden; vertical-align: middle; }
.bar i { display: block; height: 100%; }
.comp { display: inline-block; margin-right: 8px; white-space: nowrap; }
.good { color: var(--ok); } .fair { color: var(--warn); } .poor { color: var(--bad); }
.track { position: relative; width: 140px; height: 10px; margin-top: 4px;
         background: var(--bg); border: 1px solid var(--line); border-radius: 3px; }
.track .seg { position: absolute; top: 0; bottom: 0; opacity: 0.55; }
.track .mark { position: absolute; top: -3px; width: 3px; height: 14px; margin-left: -1px; }
.steps { font-size: 12px; white-space: nowrap; }
#chart { display: block; margin-top: 4px; }
#chart .line { fill: none; stroke: var(--info); stroke-width: 1.5; }
#chart .now { fill: var(--info); }
#chart .band { stroke: var(--line); stroke-dasharray: 3 3; }
#chart text { font-size: 10px; fill: var(--idle); }
.muted, footer { color: var(--idle); }
footer { padding: 8px 20px; font-size: 12px; }
footer.stale { color: var(--bad); font-weight: 600; }
"""

_BODY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chorus health mesh</title>
<link rel="icon" href="data:,">
<style>__STYLE__</style>
</head>
<body>
<header>
  <h1>chorus health mesh</h1>
  <div>as seen by <code id="node">&hellip;</code></div>
  <div>cluster <span id="status" class="badge unknown">&hellip;</span></div>
  <div>cluster score <b id="score">&mdash;</b></div>
  <div>admin <code id="admin">&mdash;</code></div>
  <div id="counts" class="chips"></div>
  <div>cluster score, last hour
    <svg id="chart" width="240" height="48" viewBox="0 0 240 48" role="img"
         aria-label="cluster score over the last hour"></svg>
    <span id="chart-low" class="muted"></span></div>
</header>
<div id="banner" hidden></div>
<div id="partial" class="muted" hidden></div>
<main>
<table>
  <thead>
    <tr><th>peer</th><th>state, last 10 minutes</th><th>status</th><th>score</th><th>components</th>
        <th>last seen</th><th>incarnation</th><th>version</th><th>health address</th></tr>
  </thead>
  <tbody id="peers"></tbody>
</table>
</main>
<footer id="updated">loading&hellip;</footer>
<script>__SCRIPT__</script>
</body>
</html>
"""

DASHBOARD_HTML = _BODY.replace("__STYLE__", _STYLE).replace("__SCRIPT__", SCRIPT)


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# Hashes, not 'unsafe-inline': only this exact script and style may run, so even markup
# injected through a bug could not execute. connect-src 'self' keeps fetch() on this node.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src {_csp_hash(SCRIPT)}",
        f"style-src {_csp_hash(_STYLE)}",
        "connect-src 'self'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_dashboard(app: QuartTrio) -> None:
    """Serve the dashboard at ``/``; it is open like /health, its data behind the token."""

    async def dashboard() -> Response:
        return Response(DASHBOARD_HTML, mimetype="text/html", headers=_HEADERS)

    app.add_url_rule("/", "dashboard", dashboard, methods=["GET"])
