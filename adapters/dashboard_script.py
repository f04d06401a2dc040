"""The dashboard's script: the browser side of ``adapters.dashboard``'s page.

Every ``REFRESH_MS`` it fetches ``health/cluster`` from the node that served the page
(relative, so it works behind a path prefix; a view of more than ``PAGE`` members as its
first page and the members that are not alive) and redraws the member table, each row's
ten-minute track of transitions and the cluster score's last hour. Peer data comes from
gossip, so a hostile peer chooses its own ``version`` and addresses: the script writes
every value with ``textContent``, never as HTML, and turns only known words into class
names. A token in the page's fragment (``/#token=<token>``) goes out as an
``Authorization`` header on its own requests only.

Kept apart from the page because it is most of the dashboard's lines and all of its logic;
the page hashes it into its Content-Security-Policy, so it must stay one fixed string.
"""

from __future__ import annotations

__all__ = ["PAGE", "REFRESH_MS", "SCRIPT"]

# Two seconds: a devnet's suspicion resolves in ~2-4 s, so a state change shows within a
# refresh or two; a page per operator costs one small JSON request every 2 s.
REFRESH_MS = 2000
# Members per request. A whole view of 10,000 members is about 6 MB of JSON every refresh;
# beyond this many the page shows the first PAGE by peer ID and up to PAGE of the members
# not alive (suspects first when those are more). This node's own row shows only if its ID
# is on the first page; the header names it either way.
PAGE = 500

SCRIPT = """
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const PAGE = __PAGE__;
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
  const partial = document.getElementById("partial");
  const total = STATES.reduce((sum, state) => sum + (Number(counts[state]) || 0), 0);
  const notAlive = peers.filter((p) => p.state !== "alive").length;
  partial.textContent = view.partial ? "showing " + peers.length + " of " + total +
    " members: the first " + PAGE + " by peer ID, and " + notAlive + " of the " +
    view.partial.troubled + " not alive" +
    (view.partial.suspectsFirst ? " (suspects first)" : "") : "";
  partial.hidden = !view.partial;
  drawChart(view.score_history, nowMs);
}

function showProblem(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

async function getJson(path, headers, signal) {
  // Relative on purpose: behind a path prefix (kubectl proxy, an ingress) it still
  // reaches the node that served the page.
  const response = await fetch(path, {headers, cache: "no-store", signal});
  if (response.status === 401) {
    throw new Error("this node needs its health token: open this page as /#token=<token>");
  }
  if (!response.ok) throw new Error("/health/cluster answered " + response.status);
  return response.json();
}

// A view larger than one page comes in parts: the first PAGE members by peer ID, and up
// to PAGE of the members that are not alive, the ones an operator looks for; when even
// those are more than a page (minted identities gone dead can be), the suspects come
// first. Counts, status and admin are the whole view's in every answer.
async function getView(headers, signal) {
  const view = await getJson("health/cluster?limit=" + PAGE, headers, signal);
  const next = view.page ? view.page.next : null;
  if (next === null || next === undefined) return view;
  const troubled = await getJson("health/cluster?state=suspect,dead,left&limit=" + PAGE,
                                 headers, signal);
  let extra = Array.isArray(troubled.peers) ? troubled.peers : [];
  const more = troubled.page && troubled.page.next !== null && troubled.page.next !== undefined;
  if (more) {
    const suspects = await getJson("health/cluster?state=suspect&limit=" + PAGE,
                                   headers, signal);
    extra = (Array.isArray(suspects.peers) ? suspects.peers : []).concat(extra);
  }
  const peers = Array.isArray(view.peers) ? view.peers : [];
  const have = new Set(peers.map((p) => p.peer_id));
  for (const p of extra) {
    if (!have.has(p.peer_id)) {
      have.add(p.peer_id);
      peers.push(p);
    }
  }
  view.peers = peers;
  const total = troubled.page ? Number(troubled.page.total) : NaN;
  view.partial = {troubled: isFinite(total) ? total : extra.length, suspectsFirst: more};
  return view;
}

async function refresh() {
  const headers = {Accept: "application/json"};
  const secret = token();
  if (secret) headers.Authorization = "Bearer " + secret;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  const footer = document.getElementById("updated");
  try {
    render(await getView(headers, abort.signal));
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
""".replace("__REFRESH_MS__", str(REFRESH_MS)).replace("__PAGE__", str(PAGE))
