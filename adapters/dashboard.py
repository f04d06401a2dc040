"""The cluster dashboard: one self-contained HTML page at ``/`` on every node.

The page is static; its script fetches ``/health/cluster`` from the node that served it
every ``REFRESH_MS`` and redraws one table row per member of that node's cluster view: state
(alive / suspect / dead / left) and self-reported status in colour, score, component scores,
last seen, incarnation, version and addresses, with the elected admin marked. Each row ends
with the member's recent past: its transitions (the view's history, newest five) drawn on a
ten-minute track, one coloured stretch per state and a mark per change whose tooltip says
when and why; above the table, the cluster score of the last hour as a small chart (the
node keeps it, ``mesh.score_history``, so a page opened now still shows the past hour).

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

__all__ = ["CONTENT_SECURITY_POLICY", "DASHBOARD_HTML", "REFRESH_MS", "add_dashboard"]

# Two seconds: a devnet's suspicion resolves in ~2-4 s, so a state change shows within a
# refresh or two; a page per operator costs one small JSON request every 2 s.
REFRESH_MS = 2000

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

_SCRIPT = """
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const TIMEOUT_MS = 5000;
const STATES = ["alive", "suspect", "dead", "left"];
const STATUSES = ["healthy", "degraded", "unhealthy", "starting", "stopping"];

function token() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : "";
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// Only known words become class names: a peer cannot style its row by what it reports.
function known(value, allowed) {
  return allowed.includes(value) ? value : "unknown";
}

function shortId(id) {
  id = String(id || "");
  return id.length > 20 ? id.slice(0, 8) + "\\u2026" + id.slice(-6) : id;
}

function scoreClass(score) {
  return score >= 0.75 ? "good" : score >= 0.5 ? "fair" : "poor";
}

function fmtScore(score) {
  return typeof score === "number" && isFinite(score) ? score.toFixed(2) : "\\u2014";
}

function fmtAge(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "\\u2014";
  if (seconds < 1) return "just now";
  if (seconds < 60) return seconds.toFixed(1) + " s ago";
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  if (m < 60) return m + " min " + s + " s ago";
  return Math.floor(m / 60) + " h " + (m % 60) + " min ago";
}

// The track spans this much of the member's past, ending at the view's timestamp.
const TRACK_S = 600;

function fmtClock(ms) {
  return new Date(ms).toLocaleTimeString();
}

// Transitions oldest first, with parsed times; entries a peer could have garbled are
// dropped, never drawn.
function steps(history) {
  const out = [];
  for (const t of Array.isArray(history) ? history : []) {
    const at = Date.parse(t && t.at);
    if (!isFinite(at)) continue;
    out.push({at, from: known(String(t.from || ""), STATES), to: known(String(t.to || ""), STATES),
              cause: String(t.cause || ""), detail: String(t.detail || "")});
  }
  return out.sort((a, b) => a.at - b.at);
}

function timeline(history, nowMs) {
  const box = el("div", null, "timeline");
  const all = steps(history);
  const start = nowMs - TRACK_S * 1000;
  const frac = (ms) => Math.max(0, Math.min(1, (ms - start) / (TRACK_S * 1000)));
  const pct = (ms) => frac(ms) * 100 + "%";
  const track = el("div", null, "track");
  track.title = "the last " + TRACK_S / 60 + " minutes";
  all.forEach((step, i) => {
    const end = i + 1 < all.length ? all[i + 1].at : nowMs;
    if (end > start) {
      const seg = el("i", null, "seg " + step.to);
      seg.style.left = pct(step.at);
      seg.style.width = (frac(end) - frac(step.at)) * 100 + "%";
      track.appendChild(seg);
    }
    const mark = el("b", null, "mark " + step.to);
    mark.dataset.to = step.to;
    mark.style.left = pct(step.at);
    mark.title = fmtClock(step.at) + "  " + step.from + " \\u2192 " + step.to +
      (step.cause ? " (" + step.cause + (step.detail ? ", " + step.detail : "") + ")" : "");
    track.appendChild(mark);
  });
  box.appendChild(track);
  for (const step of all.slice(-3).reverse()) {
    box.appendChild(el("div", step.to + " " + fmtClock(step.at), "steps muted"));
  }
  return {box, marks: all.map((step) => step.to).join(" ")};
}

// The chart's own namespace: the page spells out no URL, not even the SVG one.
function svg(tag, attrs, text) {
  const node = document.createElementNS(document.getElementById("chart").namespaceURI, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The cluster score over the last hour: one point per bucket (its lowest reading), the
// healthy (0.95) and degraded (0.75) thresholds dashed.
function drawChart(history, nowMs) {
  const W = 240, H = 48, HOUR = 3600 * 1000;
  const chart = document.getElementById("chart");
  const points = [];
  for (const p of Array.isArray(history) ? history : []) {
    const at = Date.parse(p && p.at), score = p && p.score;
    if (isFinite(at) && typeof score === "number" && isFinite(score)) {
      points.push([at, Math.max(0, Math.min(1, score))]);
    }
  }
  points.sort((a, b) => a[0] - b[0]);
  const x = (ms) => (Math.max(0, Math.min(1, 1 - (nowMs - ms) / HOUR)) * W).toFixed(1);
  const y = (score) => ((1 - score) * (H - 2) + 1).toFixed(1);
  const parts = [];
  for (const level of [0.95, 0.75]) {
    parts.push(svg("line", {class: "band", x1: 0, x2: W, y1: y(level), y2: y(level)}));
  }
  if (points.length) {
    const line = svg("polyline", {class: "line",
      points: points.map(([at, score]) => x(at) + "," + y(score)).join(" ")});
    parts.push(line);
    const [at, score] = points[points.length - 1];
    parts.push(svg("circle", {class: "now", cx: x(at), cy: y(score), r: 2.5}));
  } else {
    parts.push(svg("text", {x: 4, y: H / 2}, "no samples yet"));
  }
  chart.replaceChildren(...parts);
  chart.dataset.points = String(points.length);
  const low = points.length ? Math.min(...points.map((p) => p[1])) : null;
  document.getElementById("chart-low").textContent =
    low === null ? "" : "lowest " + low.toFixed(2) + " in the last hour";
}

function scoreCell(score) {
  const td = el("td", fmtScore(score));
  if (typeof score === "number" && isFinite(score)) {
    td.className = scoreClass(score);
    const bar = el("span", null, "bar"), fill = el("i");
    // CSSOM writes are allowed under the page's CSP; style="" attributes would not be.
    fill.style.width = Math.max(0, Math.min(1, score)) * 100 + "%";
    fill.style.background = "currentColor";
    bar.appendChild(fill);
    td.appendChild(bar);
  }
  return td;
}

function componentsCell(components) {
  const td = el("td");
  const entries = components && typeof components === "object" ? Object.entries(components) : [];
  entries.sort((a, b) => a[0].localeCompare(b[0]));
  for (const [name, score] of entries) {
    const span = el("span", name + " " + fmtScore(score), "comp");
    if (typeof score === "number") span.classList.add(scoreClass(score));
    td.appendChild(span);
  }
  if (!entries.length) td.appendChild(el("span", "\\u2014", "muted"));
  return td;
}

// /health/cluster lists a member's transitions newest first.
function lastChange(history) {
  if (!Array.isArray(history) || !history.length) return "";
  const t = history[0] || {};
  const from = t.from_state || t.from || "\\u2205", to = t.to_state || t.to || "\\u2205";
  return "last change: " + from + " \\u2192 " + to + (t.cause ? " (" + t.cause + ")" : "");
}

function row(peer, admin, nowMs) {
  const state = known(String(peer.state || "").toLowerCase(), STATES);
  const status = known(String(peer.status || "").toLowerCase(), STATUSES);
  const tr = el("tr", null, "row-" + state);
  tr.dataset.peerId = String(peer.peer_id || "");
  tr.dataset.state = state;
  tr.dataset.status = status;

  const idCell = el("td");
  const code = el("code", shortId(peer.peer_id));
  code.title = String(peer.peer_id || "");
  idCell.appendChild(code);
  if (peer.self) idCell.appendChild(el("span", "this node", "tag"));
  if (admin && peer.peer_id === admin) {
    idCell.appendChild(el("span", "\\u2605 admin", "tag"));
    tr.dataset.admin = "true";
  }
  tr.appendChild(idCell);

  const stateCell = el("td");
  stateCell.appendChild(el("span", peer.state || "?", "badge " + state));
  const suspects = Array.isArray(peer.suspected_by) ? peer.suspected_by.length : 0;
  if (suspects) stateCell.appendChild(el("div", "suspected by " + suspects, "muted"));
  stateCell.title = lastChange(peer.history);
  const past = timeline(peer.history, nowMs);
  tr.dataset.marks = past.marks;
  stateCell.appendChild(past.box);
  tr.appendChild(stateCell);

  const statusCell = el("td");
  statusCell.appendChild(el("span", peer.status || "?", "badge " + status));
  tr.appendChild(statusCell);

  tr.appendChild(scoreCell(peer.score));
  tr.appendChild(componentsCell(peer.components));
  tr.appendChild(el("td", peer.self ? "\\u2014" : fmtAge(peer.last_seen_age), "age"));
  tr.appendChild(el("td", peer.incarnation));
  tr.appendChild(el("td", peer.version));
  const addr = el("td");
  addr.appendChild(el("code", peer.http_addr || ""));
  const p2p = Array.isArray(peer.p2p_addrs) ? peer.p2p_addrs : [];
  if (p2p.length) addr.title = p2p.join("\\n");
  tr.appendChild(addr);
  return tr;
}

function render(view) {
  document.getElementById("node").textContent = shortId(view.node_id);
  document.getElementById("node").title = String(view.node_id || "");
  const status = known(String(view.status || "").toLowerCase(), STATUSES);
  const badge = document.getElementById("status");
  badge.textContent = view.status || "?";
  badge.className = "badge " + status;
  document.getElementById("score").textContent = fmtScore(view.score);
  document.getElementById("admin").textContent = view.admin ? shortId(view.admin) : "none";
  document.getElementById("admin").title = String(view.admin || "");

  const chips = document.getElementById("counts");
  chips.replaceChildren();
  const counts = view.counts || {};
  for (const state of STATES) {
    chips.appendChild(el("span", (counts[state] || 0) + " " + state, state));
  }

  // Stable order (this node first, then by peer ID): rows stay put while states change.
  const peers = Array.isArray(view.peers) ? view.peers.slice() : [];
  peers.sort((a, b) => (b.self === true) - (a.self === true) ||
    String(a.peer_id).localeCompare(String(b.peer_id)));
  // The node's clock, not the browser's: marks stay where they belong on a skewed laptop.
  const stamp = Date.parse(view.timestamp);
  const nowMs = isFinite(stamp) ? stamp : Date.now();
  document.getElementById("peers").replaceChildren(
    ...peers.map((p) => row(p, view.admin, nowMs)));
  drawChart(view.score_history, nowMs);
}

function showProblem(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

async function refresh() {
  const headers = {Accept: "application/json"};
  const secret = token();
  if (secret) headers.Authorization = "Bearer " + secret;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  const footer = document.getElementById("updated");
  try {
    // Relative on purpose: behind a path prefix (kubectl proxy, an ingress) it still
    // reaches the node that served the page.
    const response = await fetch("health/cluster", {headers, cache: "no-store",
                                                     signal: abort.signal});
    if (response.status === 401) {
      throw new Error("this node needs its health token: open this page as /#token=<token>");
    }
    if (!response.ok) throw new Error("/health/cluster answered " + response.status);
    render(await response.json());
    showProblem("");
    footer.textContent = "updated " + new Date().toLocaleTimeString() +
      " \\u00b7 refreshing every " + REFRESH_MS / 1000 + " s";
    footer.className = "";
  } catch (error) {
    // Keep the last table: a stale view marked as stale beats an empty page.
    showProblem("cannot read the cluster view: " + (error && error.message || error));
    footer.className = "stale";
  } finally {
    clearTimeout(timer);
    // Chained timeouts, not setInterval: a slow node never has requests piling up.
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
""".replace("__REFRESH_MS__", str(REFRESH_MS))

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

DASHBOARD_HTML = _BODY.replace("__STYLE__", _STYLE).replace("__SCRIPT__", _SCRIPT)


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# Hashes, not 'unsafe-inline': only this exact script and style may run, so even markup
# injected through a bug could not execute. connect-src 'self' keeps fetch() on this node.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src {_csp_hash(_SCRIPT)}",
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
