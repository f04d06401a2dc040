"""The packet-loss soak of ``python -m devnet.bench --parts loss`` (issue 13).

Both clusters side by side, every node in its own network namespace: ours a ``--netns``
devnet in the production profile (devnet/cluster.py, NetnsNet), Serf's agents in
namespaces of their own on a second bridge (devnet/serf.py). Inside each namespace one
nftables table drops N % of the packets arriving from the other members at random
(devnet/netloss.py has the rule, and why on input only).

Phases, each half the minutes asked for: N = 5, then N = 20 on every link in one direction
only (netloss.lossy_sources: the answers are lost and the requests arrive, or the other way
round), then N = 20 both ways. The table is replaced in one nft transaction (add, delete,
define), which also zeroes its counters.
Counted per side and phase as in the CPU soak (devnet/bench_soak.py): transitions into
dead (and suspect, left) per observer and member between two polls a second apart; for
us also the transitions in every node's per-peer history (the counting is in
devnet/bench_loss_counts.py), for Serf the ``EventMemberFailed`` and ``Suspect ... no acks
received`` lines its agents log. Nothing is killed during the phases, so every dead is a
false death. Then, still at 20 %, node 2 of each side gets SIGKILL at the same moment; the
time until every other node lists it dead is the extra row.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devnet.bench_detection import CONVERGE_TIMEOUT, all_alive, all_see, poll_until
from devnet.bench_loss_counts import ChorusPoller, Tally, history_counts
from devnet.bench_soak import log_offsets
from devnet.bench_target import ChorusTarget, Target
from devnet.bench_text import fmt
from devnet.cluster import DevnetError, NetnsNet
from devnet.netloss import loss_counters, loss_table, set_loss
from devnet.serf import SerfCluster

__all__ = ["PHASES", "loss_section", "loss_soak", "netns_sides", "phase_name"]

# (per cent lost on each link, in one direction only?); each phase half the minutes.
PHASES = ((5, False), (20, True), (20, False))
VICTIM = 2  # the node SIGKILLed at the end, as in the detection runs
KILL_TIMEOUT = 120.0  # 20 % loss slows both sides' probes; a generous bound
KILL_POLL = 0.25  # poll interval while timing the kill: the figure's resolution
SOAK_POLL = 1.0  # poll interval during the phases, as in the CPU soak
SERF_SUSPECT = b"has failed, no acks received"  # memberlist's own probe gave up
SERF_FAILED = b"EventMemberFailed"


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


def netns_sides(
    folder: Path, *, admission: bool, profile: str
) -> tuple[ChorusTarget, NetnsNet, SerfCluster, NetnsNet]:
    """Our cluster and Serf's, every node in a namespace of its own, on two bridges whose
    subnets and names do not collide (not started yet)."""
    chorus = ChorusTarget(folder / "chorus", admission=admission, profile=profile, netns=True)
    chorus_net = NetnsNet(chorus.devnet.run.root)
    serf_net = _distinct_net((folder / "serf-netns").absolute(), chorus_net)
    return chorus, chorus_net, SerfCluster(folder / "serf", netns=serf_net), serf_net


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
    chorus, chorus_net, serf, serf_net = netns_sides(folder, admission=admission, profile=profile)
    poller = ChorusPoller(chorus)
    try:
        return _soak(chorus, chorus_net, poller, serf, serf_net, n, minutes, say)
    finally:
        poller.close()
        for target in (chorus, serf):
            with contextlib.suppress(DevnetError, OSError):
                target.close()


def phase_name(percent: int, one_way: bool) -> str:
    return f"{percent} % loss" + (" one way" if one_way else "")


def _soak(
    chorus: ChorusTarget,
    chorus_net: NetnsNet,
    poller: ChorusPoller,
    serf: SerfCluster,
    serf_net: NetnsNet,
    n: int,
    minutes: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    converged: dict[str, bool] = {}
    for target in (chorus, serf):
        say(f"loss: starting {n} {target.name} nodes in network namespaces")
        target.start(n)
        agreed = poll_until(target, all_alive(set(range(1, n + 1))), timeout=CONVERGE_TIMEOUT,
                            interval=0.5)  # fmt: skip
        converged[target.name] = agreed is not None
    # name -> (how to poll its views, its namespaces)
    sides: dict[str, tuple[Callable[[], dict[int, dict[int, str]]], NetnsNet]] = {
        chorus.name: (poller.views, chorus_net),
        serf.name: (serf.views, serf_net),
    }
    out: dict[str, Any] = {"n": n, "minutes": minutes, "converged_before": converged}
    phases: list[dict[str, Any]] = []
    windows: list[tuple[float, float]] = []
    tallies = {name: Tally() for name in sides}
    length = minutes / 2
    for percent, one_way in PHASES:
        for _views, net in sides.values():
            set_loss(net, n, percent, one_way=one_way)
        offsets = log_offsets(serf.root)
        # A new count per phase, from the states the last phase ended with: a member
        # still dead from phase 1 is no new false death in phase 2.
        tallies = {name: Tally(previous=dict(t.previous)) for name, t in tallies.items()}
        began_wall = time.time()
        end = time.monotonic() + length * 60
        label = phase_name(percent, one_way)
        say(f"loss: {label} for {length:g} min")
        while time.monotonic() < end:
            began = time.monotonic()
            for name, (views, _net) in sides.items():
                tallies[name].observe(views(), n)
            time.sleep(max(0.0, SOAK_POLL - (time.monotonic() - began)))
        poller.views()  # the histories' last word on this phase
        windows.append((began_wall, time.time()))
        phase: dict[str, Any] = {"percent": percent, "one_way": one_way, "minutes": length}
        for name, (_views, net) in sides.items():
            seen, dropped = loss_counters(net, n)
            phase[name] = tallies[name].counts() | {
                "measured_loss": dropped / seen if seen else None,
                "packets": seen,
            }
        phase[chorus.name]["history"] = history_counts(poller.entries, [windows[-1]])[0]
        phase[serf.name]["logged"] = _serf_logged(serf.root, offsets)
        phases.append(phase)
        ours, theirs = phase[chorus.name], phase[serf.name]
        say(
            f"loss: {label} done: ours {_dead_cell(ours, True)} dead,"
            f" {_suspect_cell(ours, True)}; Serf {_dead_cell(theirs, False)} dead,"
            f" {_suspect_cell(theirs, False)}"
        )
    out["phases"] = phases
    out["kill"] = _time_kill([chorus, serf], n, say)
    out["kill_percent"] = PHASES[-1][0]
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
        f"{name} {fmt(found[name])}" for name in found))  # fmt: skip
    return found


# ----------------------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _name(phase: Mapping[str, Any]) -> str:
    return phase_name(phase["percent"], bool(phase.get("one_way")))


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
    if "error" in result:
        return ["## False deaths under packet loss", "", f"Not measured: {result['error']}", ""]
    phases = result.get("phases", [])
    # --loss-minutes sets each phase's length (half of it), not the soak's.
    total = sum(p["minutes"] for p in phases) or minutes
    plan = ", then ".join(f"{_name(p)} for {p['minutes']:g} min" for p in phases)
    lines = [
        f"## False deaths under packet loss ({total:g} min, {n} nodes each, each node in its"
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
        f"{plan}. One way: each node loses only what some of its peers send"
        " (`saddr { ... }` instead of `saddr != <bridge>`: from node j > i when i + j is"
        " even, j < i when it is odd), so of every pair exactly one direction loses, the"
        " requests arriving and the answers lost or the other way round. Every node's view"
        " is polled about once a second; nothing is killed"
        " during the phases, so every live node reported dead is a false death (counted"
        " once per observer and member). Then, still at"
        f" {result.get('kill_percent', 20)} % loss, node {VICTIM} of each side gets SIGKILL"
        " at the same moment. Run it with `python -m devnet.bench --parts loss"
        f" --loss-minutes {minutes:g}`.",
        "",
        "Suspicions do not compare one to one: ours are every observer's view entering"
        " suspect (one suspicion spreads to every view; the histories also hold those"
        " shorter than a poll), Serf's only the agent whose own probe gave up (memberlist"
        " logs nothing for a suspicion it hears of, and its members RPC never shows one).",
        "",
        f"| {n} nodes each | ours | Serf |",
        "|---|---:|---:|",
    ]
    for phase in phases:
        ours, serf = phase.get("chorus", {}), phase.get("Serf", {})
        if not ours or not serf:
            continue
        head = f"{_name(phase)}, {phase['minutes']:g} min:"
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
        f" node sees it dead | {fmt(kill.get('chorus'))} | {fmt(kill.get('Serf'))} |"
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
