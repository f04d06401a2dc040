"""The packet-loss soak of ``python -m devnet.bench --parts loss`` (issue 13).

Both clusters side by side, every node in its own network namespace: ours a ``--netns``
devnet in the production profile (devnet/cluster.py, NetnsNet), Serf's agents in
namespaces of their own on a second bridge (devnet/serf.py). Inside each namespace one
nftables table loses packets at random (this kernel has no netem)::

    table inet chorus_loss {
        chain input {
            type filter hook input priority filter; policy accept;
            iifname "eth0" ip saddr != <bridge> counter
            iifname "eth0" ip saddr != <bridge> numgen random mod 100 < N counter drop
        }
    }

Input only, on purpose. A packet from A to B crosses A's output hook and B's input hook:
a rule on both would lose 1 - (1 - p)^2 of it (36 % at 20 %). And a drop at output is not
silent: the kernel fails the sender's sendto() with EPERM, which Serf logs and reacts to
and a lossy wire never tells. At input each direction of every link loses N % without a
word to either end. The bridge's address (the root namespace, where the bench polls from)
is spared, so that the polls read the views instead of losing to the loss; only traffic
between members is dropped. The first rule counts what the second one drew from, so the
report gives the loss actually measured.

Phases: N = 5 for the first half of the minutes, then 20 for the second half; the table
is replaced in one nft transaction (add, delete, define), which also zeroes its counters.
Counted per side and phase as in the CPU soak (devnet/bench.py, soak): transitions into
dead (and suspect, left) per observer and member between two polls a second apart; for
us also the transitions in every node's per-peer history, for Serf the
``EventMemberFailed`` and ``Suspect ... no acks received`` lines its agents log. Nothing
is killed during the phases, so every dead is a false death. Then, still at 20 %, node 2
of each side gets SIGKILL at the same moment; the time until every other node lists it
dead is the extra row.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devnet.bench import (
    CONVERGE_TIMEOUT,
    ChorusTarget,
    Target,
    _fmt,
    _log_offsets,
    _wall,
    all_alive,
    all_see,
    poll_until,
)
from devnet.cluster import DevnetError, NetnsNet, get_json
from devnet.serf import SerfCluster

__all__ = [
    "PHASES",
    "Tally",
    "loss_ruleset",
    "loss_section",
    "loss_soak",
    "loss_table",
    "parse_counters",
]

LOSS_TABLE = "chorus_loss"
PHASES = (5, 20)  # per cent lost on each link, each way; each phase half the minutes
VICTIM = 2  # the node SIGKILLed at the end, as in the detection runs
KILL_TIMEOUT = 120.0  # 20 % loss slows both sides' probes; a generous bound
KILL_POLL = 0.25  # poll interval while timing the kill: the figure's resolution
SOAK_POLL = 1.0  # poll interval during the phases, as in the CPU soak
SERF_SUSPECT = b"has failed, no acks received"  # memberlist's own probe gave up
SERF_FAILED = b"EventMemberFailed"


def loss_table(percent: int | str, spared: str) -> str:
    """The loss table in nft syntax (``percent`` may be a placeholder, for the report)."""
    match = f'iifname "eth0" ip saddr != {spared}'
    return (
        f"table inet {LOSS_TABLE} {{\n"
        "    chain input {\n"
        "        type filter hook input priority filter; policy accept;\n"
        f"        {match} counter\n"
        f"        {match} numgen random mod 100 < {percent} counter drop\n"
        "    }\n"
        "}\n"
    )


def loss_ruleset(percent: int, spared: str) -> str:
    """The nft script that (re)defines the loss table: ``percent`` of the packets arriving
    on eth0 from anyone but ``spared`` (the bridge: the poller) are dropped."""
    if not 0 <= percent <= 100:
        raise ValueError(f"loss must be 0-100 %, got {percent}")
    # "add" then "delete" makes the script idempotent: the first run has nothing to
    # delete. One nft -f is one transaction, so no packet sees the table half replaced.
    return f"add table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n" + loss_table(
        percent, spared
    )


def parse_counters(listing: str) -> tuple[int, int]:
    """(packets seen, packets dropped) from ``nft -j list table inet chorus_loss``: the
    counters of its first and second rule."""
    counts: list[int] = []
    for item in json.loads(listing).get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                counts.append(int(expr["counter"].get("packets", 0)))
    if len(counts) != 2:
        raise ValueError(f"expected the loss table's two counters, found {len(counts)}")
    return counts[0], counts[1]


def _nft(net: NetnsNet, index: int, *args: str, script: str | None = None) -> str:
    done = subprocess.run(
        [*net.exec_prefix(index), "nft", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        raise DevnetError(f"nft in {net.ns(index)}: {done.stderr.strip()}")
    return done.stdout


def _spared(net: NetnsNet) -> str:
    return f"10.{net.octet}.77.254"  # the bridge's address in the root namespace


def set_loss(net: NetnsNet, n: int, percent: int) -> None:
    script = loss_ruleset(percent, _spared(net))
    for i in range(1, n + 1):
        _nft(net, i, "-f", "-", script=script)


def loss_counters(net: NetnsNet, n: int) -> tuple[int, int]:
    seen = dropped = 0
    for i in range(1, n + 1):
        a, b = parse_counters(_nft(net, i, "-j", "list", "table", "inet", LOSS_TABLE))
        seen, dropped = seen + a, dropped + b
    return seen, dropped


@dataclass
class Tally:
    """What the 1 s polls of one side showed during one phase."""

    dead: int = 0
    suspect: int = 0
    left: int = 0
    polls: int = 0
    unanswered: int = 0
    # (observer, member) -> the state at the last poll; unseen pairs count as alive.
    previous: dict[tuple[int, int], str] = field(default_factory=dict)

    def observe(self, views: Mapping[int, Mapping[int, str]], n: int) -> None:
        """One poll: every change of a pair into dead, suspect or left counts once."""
        self.polls += 1
        self.unanswered += n - len(views)
        for observer, members in views.items():
            for member, state in members.items():
                key = (observer, member)
                if state != self.previous.get(key, "alive") and state in (
                    "dead",
                    "suspect",
                    "left",
                ):
                    setattr(self, state, getattr(self, state) + 1)
                self.previous[key] = state

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "previous"}


def _history(target: ChorusTarget, windows: Sequence[tuple[float, float]]) -> list[dict[str, int]]:
    """Per wall-clock window: transitions into dead and suspect in every node's per-peer
    history (a false death shorter than a poll interval still shows there)."""
    found = [{"dead": 0, "suspect": 0} for _ in windows]
    for rec in target.devnet.state().nodes.values():
        code, body = get_json(rec.http_url + "/health/cluster", timeout=5.0)
        if code != 200 or not isinstance(body, dict):
            continue
        for peer in body.get("peers", []):
            for step in peer.get("history", []):
                at, to = _wall(step.get("at")), step.get("to")
                for k, (start, end) in enumerate(windows):
                    if to in found[k] and start <= at < end:
                        found[k][to] += 1
    return found


def _serf_logged(folder: Path, offsets: Mapping[Path, int]) -> dict[str, int]:
    """EventMemberFailed and 'no acks' suspicion lines the agents logged since ``offsets``."""
    out = {"failed": 0, "suspect": 0}
    for log in folder.glob("serf*.log"):
        with log.open("rb") as handle:
            handle.seek(offsets.get(log, 0))
            text = handle.read()
        out["failed"] += text.count(SERF_FAILED)
        out["suspect"] += text.count(SERF_SUSPECT)
    return out


def _distinct_net(root: Path, other: NetnsNet) -> NetnsNet:
    """A NetnsNet for ``root`` whose bridge subnet and names differ from ``other``'s."""
    for k in range(20):
        net = NetnsNet(root if k == 0 else root.with_name(f"{root.name}-{k}"))
        if net.octet != other.octet and net.tag != other.tag:
            return net
    raise DevnetError("no free subnet for Serf's namespaces")


def loss_soak(
    folder: Path,
    n: int,
    minutes: float,
    say: Callable[[str], None],
    *,
    admission: bool = True,
    profile: str = "production",
) -> dict[str, Any]:
    """Start both sides in namespaces, run the phases, time a SIGKILL; always clean up."""
    chorus = ChorusTarget(folder / "chorus", admission=admission, profile=profile, netns=True)
    chorus_net = NetnsNet(chorus.devnet.run.root)
    serf_net = _distinct_net((folder / "serf-netns").absolute(), chorus_net)
    serf = SerfCluster(folder / "serf", netns=serf_net)
    sides: list[tuple[Target, NetnsNet]] = [(chorus, chorus_net), (serf, serf_net)]
    try:
        return _soak(chorus, serf, sides, n, minutes, say, folder / "serf")
    finally:
        for target, _net in sides:
            with contextlib.suppress(DevnetError, OSError):
                target.close()


def _soak(
    chorus: ChorusTarget,
    serf: SerfCluster,
    sides: Sequence[tuple[Target, NetnsNet]],
    n: int,
    minutes: float,
    say: Callable[[str], None],
    serf_logs: Path,
) -> dict[str, Any]:
    converged: dict[str, bool] = {}
    for target, _net in sides:
        say(f"loss: starting {n} {target.name} nodes in network namespaces")
        target.start(n)
        agreed = poll_until(target, all_alive(set(range(1, n + 1))), timeout=CONVERGE_TIMEOUT,
                            interval=0.5)  # fmt: skip
        converged[target.name] = agreed is not None
    out: dict[str, Any] = {
        "n": n,
        "minutes": minutes,
        "converged_before": converged,
        "phases": [],
    }
    windows: list[tuple[float, float]] = []
    tallies = {target.name: Tally() for target, _net in sides}
    for percent in PHASES:
        for _target, net in sides:
            set_loss(net, n, percent)
        offsets = _log_offsets(serf_logs)
        # A new count per phase, from the states the last phase ended with: a member
        # still dead from phase 1 is no new false death in phase 2.
        tallies = {name: Tally(previous=dict(t.previous)) for name, t in tallies.items()}
        began_wall = time.time()
        end = time.monotonic() + minutes * 60 / len(PHASES)
        say(f"loss: {percent} % for {minutes / len(PHASES):g} min")
        while time.monotonic() < end:
            began = time.monotonic()
            for target, _net in sides:
                tallies[target.name].observe(target.views(), n)
            time.sleep(max(0.0, SOAK_POLL - (time.monotonic() - began)))
        windows.append((began_wall, time.time()))
        phase: dict[str, Any] = {"percent": percent, "minutes": minutes / len(PHASES)}
        for target, net in sides:
            seen, dropped = loss_counters(net, n)
            phase[target.name] = tallies[target.name].counts() | {
                "measured_loss": dropped / seen if seen else None,
                "packets": seen,
            }
        phase["Serf"]["logged"] = _serf_logged(serf_logs, offsets)
        out["phases"].append(phase)
        ours, theirs = phase["chorus"], phase["Serf"]
        say(
            f"loss: {percent} % done: ours {_dead_cell(ours, True)} dead,"
            f" {ours['suspect']} suspect by polls; Serf {_dead_cell(theirs, False)} dead,"
            f" {_suspect_cell(theirs, False)}"
        )
    # Before the kill, so that its death is in no window.
    for phase, counted in zip(out["phases"], _history(chorus, windows), strict=True):
        phase["chorus"]["history"] = counted
    out["kill"] = _time_kill([target for target, _net in sides], n, say)
    out["kill_percent"] = PHASES[-1]
    return out


def _time_kill(targets: Sequence[Target], n: int, say: Callable[[str], None]) -> dict[str, Any]:
    """SIGKILL node VICTIM on every side at once; seconds until all others list it dead."""
    others = set(range(1, n + 1)) - {VICTIM}
    sent: dict[str, float] = {}
    for target in targets:
        sent[target.name] = time.monotonic()
        target.signal(VICTIM, signal.SIGKILL)
    found: dict[str, float | None] = {t.name: None for t in targets}
    pending = list(targets)
    deadline = time.monotonic() + KILL_TIMEOUT
    while pending and time.monotonic() < deadline:
        began = time.monotonic()
        for target in list(pending):
            asked = time.monotonic()  # each side's own poll time, as poll_until takes it
            if all_see(others, VICTIM, {"dead"})(target.views()):
                found[target.name] = asked - sent[target.name]
                pending.remove(target)
        time.sleep(max(0.0, KILL_POLL - (time.monotonic() - began)))
    say("loss: SIGKILL seen dead everywhere: " + ", ".join(
        f"{name} {_fmt(found[name])}" for name in found))  # fmt: skip
    return found


# ----------------------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _dead_cell(tally: Mapping[str, Any], ours: bool) -> str:
    if ours:
        history = tally.get("history", {}).get("dead")
        detail = [f"{history} in the views' histories"] if history is not None else []
        worst = max(tally["dead"], history or 0)
    else:
        logged = tally.get("logged", {}).get("failed")
        detail = [f"{logged} EventMemberFailed logged"] if logged is not None else []
        worst = max(tally["dead"], logged or 0)
    detail.append(f"{tally['dead']} seen by 1 s polls")
    return f"{worst} ({', '.join(detail)})"


def _suspect_cell(tally: Mapping[str, Any], ours: bool) -> str:
    if ours:
        history = tally.get("history", {}).get("suspect")
        where = f"{history} in the histories, " if history is not None else ""
        return f"{where}{tally['suspect']} seen by polls"
    logged = tally.get("logged", {}).get("suspect")
    return "n/a" if logged is None else f"{logged} own probes gave up (logged)"


def loss_section(result: Mapping[str, Any]) -> list[str]:
    """The BENCHMARKS.md section, laid out like the CPU soak's."""
    n, minutes = result["n"], result["minutes"]
    phases = result.get("phases", [])
    plan = ", then ".join(f"{p['percent']} % for {p['minutes']:g} min" for p in phases)
    lines = [
        f"## False deaths under packet loss ({minutes:g} min, {n} nodes each, each node in its"
        " own network namespace, both clusters side by side)",
        "",
        "Ours: a `--netns` devnet in the production profile. Serf: each agent in a namespace"
        " of its own on a second bridge, same layout. Inside every namespace of both sides"
        " one nftables table (this kernel has no netem) drops packets at random:",
        "",
        "```",
        loss_table("N", "<bridge address>").rstrip(),
        "```",
        "",
        "on input only, so that each direction of every link loses N % silently (a rule on"
        " output too would compound to 1 - (1 - p)^2, and a drop at output fails the"
        " sender's send with EPERM, which no lossy wire does). Traffic from the bridge's"
        " address, the bench's own polls, is spared. Phases: "
        f"{plan}. Every node's view is polled about once a second; nothing is killed"
        " during the phases, so every live node reported dead is a false death (counted"
        " once per observer and member). Then, still at"
        f" {result.get('kill_percent', 20)} % loss, node {VICTIM} of each side gets SIGKILL"
        " at the same moment. Run it with `python -m devnet.bench --parts loss"
        f" --loss-minutes {minutes:g}`.",
        "",
        f"| {n} nodes each | ours | Serf |",
        "|---|---:|---:|",
    ]
    for phase in phases:
        ours, serf = phase.get("chorus", {}), phase.get("Serf", {})
        if not ours or not serf:
            continue
        head = f"{phase['percent']} % loss, {phase['minutes']:g} min:"
        lines += [
            f"| {head} live nodes reported dead | {_dead_cell(ours, True)} |"
            f" {_dead_cell(serf, False)} |",
            f"| {head} suspicions | {_suspect_cell(ours, True)} | {_suspect_cell(serf, False)} |",
            f"| {head} polls unanswered | {ours['unanswered']} of {ours['polls'] * n} |"
            f" {serf['unanswered']} of {serf['polls'] * n} |",
            f"| {head} packets dropped (measured) | {_pct(ours.get('measured_loss'))} of"
            f" {ours.get('packets', 0)} | {_pct(serf.get('measured_loss'))} of"
            f" {serf.get('packets', 0)} |",
        ]
        if ours.get("left") or serf.get("left"):
            # A node that shut itself down (a critical check kept failing) shows as left.
            lines.append(f"| {head} live nodes reported left | {ours['left']} | {serf['left']} |")
    kill = result.get("kill", {})
    lines.append(
        f"| SIGKILL node {VICTIM} at {result.get('kill_percent', 20)} % loss → every other"
        f" node sees it dead | {_fmt(kill.get('chorus'))} | {_fmt(kill.get('Serf'))} |"
    )
    never = [name for name, ok in result.get("converged_before", {}).items() if not ok]
    if never:
        lines += [
            "",
            f"Never agreed before the loss began (within {CONVERGE_TIMEOUT:.0f} s):"
            f" {', '.join(never)}; its count includes nodes it had not yet seen alive.",
        ]
    lines.append("")
    return lines
