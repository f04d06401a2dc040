"""The view's clock-driven rules: silence, the suspicion deadline, and forgetting.

The view reads no clock: the adapter calls ``tick`` with the time, and ``next_deadline``
tells a timer-driven adapter when ``tick`` will next have something to do. Silence is our
own evidence (``mesh.cluster_suspicions``); the deadline of a suspicion is its own (rule 7,
``mesh.suspicion``), scaled by our local health and the suspect's own (rule 8,
``mesh.awareness``). Rule 11 of ``mesh.cluster_view``, carried out here:

11. Forgetting. DEAD members are dropped after ``dead_forget_after``, LEFT ones after
    ``left_forget_after`` (FORGOTTEN).

A forgotten member's tombstone expires here too (rule 1).
"""

from __future__ import annotations

from mesh.awareness import Awareness, reported_health
from mesh.cluster_events import Event, PublishSuspect
from mesh.cluster_roster import MemberRecord, Roster
from mesh.cluster_suspicions import Suspicions
from mesh.cluster_transitions import ALIVE, DEAD, LEFT, SUSPECT, Cause
from mesh.model import Status
from mesh.suspicion import Suspicion

__all__ = ["Timers"]

STARTING_WITNESS_STRETCH = 2  # the most our multiplier stretches witnesses while we start


class Timers:
    def __init__(self, roster: Roster, suspicions: Suspicions, awareness: Awareness) -> None:
        self.self_id = roster.self_id
        self.config = roster.config
        self._roster = roster
        self._suspicions = suspicions
        self._awareness = awareness

    def tick(self, now: float) -> list[Event]:
        """Run the timers: silence -> suspect, suspicion timeout -> dead, forgetting."""
        events: list[Event] = []
        self._awareness.refresh(now)
        n = self._roster.live_count()
        known = self._roster.known_live_count()
        silence = self.config.silence_timeout(n) * self._awareness.multiplier
        for peer, record in list(self._roster.records.items()):
            if peer == self.self_id or record.state not in (ALIVE, SUSPECT):
                continue
            if now - record.last_heard >= silence:
                events += self._suspicions.observe(peer, Cause.SILENCE, now)
        for peer, record in list(self._roster.records.items()):
            suspicion = record.suspicion
            if record.state is not SUSPECT or suspicion is None:
                continue
            if suspicion.held():
                continue  # rule 12: carried notices alone make nobody dead
            deadline = self._deadline(record, suspicion, n, known)
            # Rule 8: a starved node does not condemn others on its own timing alone, nor
            # say it again.
            timing_only = self._awareness.starved and suspicion.rests_on_timing_of(self.self_id)
            if now < deadline:
                if not timing_only:
                    events += self._repeat(peer, suspicion, deadline, now)
                continue
            if timing_only:
                continue
            detail = f"{suspicion.confirmations()} confirmations"
            if suspicion.refused_at is not None:
                detail += ", our dial-back refused"
            if suspicion.witnessed_at(self.config.refusal_witnesses) is not None:
                detail += f", {len(suspicion.witnesses)} witnesses' dials refused"
            events += self._roster.move(record, peer, Cause.SUSPICION_TIMEOUT, now, detail)
        for peer, record in list(self._roster.records.items()):
            if peer == self.self_id:
                continue
            if record.state is DEAD:
                keep = self.config.dead_forget_after
            elif record.state is LEFT:
                keep = self.config.left_forget_after
            else:
                continue
            if now - record.state_since >= keep:
                events += self._roster.forget(peer, record, now)
        for peer, (_, expires) in list(self._roster.tombstones.items()):
            if now >= expires:
                del self._roster.tombstones[peer]
        return events

    def _repeat(self, peer: str, suspicion: Suspicion, deadline: float, now: float) -> list[Event]:
        """Our lone suspicion's notice once more, if it is time (module docstring)."""
        repeat = suspicion.repeat_at(deadline)
        basis = suspicion.bases.get(self.self_id)
        if repeat is None or now < repeat or basis is None:
            return []
        suspicion.repeated = True
        return [PublishSuspect(peer, basis, refused=suspicion.said_refused)]

    def _deadline(self, record: MemberRecord, suspicion: Suspicion, n: int, known: int) -> float:
        """Rule 8 on both sides: our local health, and the suspect's own word on its."""
        began = suspicion.network
        # Mine stretches only the witnesses' grace, and at most twice while our own digest
        # says we are starting: that lag is our start's work, which holds back our own
        # dial-back longer than any grace we could give (rule 7, ``mesh.suspicion``).
        # Twice rather than not at all: a start can be made to last (a probe held to its 20 s
        # timeout), and colluding witnesses should not gain the whole stretch by it.
        mine = self._awareness.stretch(network_since=began)
        if self._starting():
            mine = min(mine, STARTING_WITNESS_STRETCH)
        reported = reported_health(record.digest, self.config.starting_health)
        theirs = self._awareness.stretch(network_since=began, reported=reported)
        return suspicion.deadline(self.config, n, mine, theirs, known)

    def _starting(self) -> bool:
        me = self._roster.records.get(self.self_id)
        return me is not None and me.digest.status is Status.STARTING

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` would do something, for a timer-driven
        adapter (None: nothing pending). A held suspicion (rule 8) has no deadline."""
        n = self._roster.live_count()
        known = self._roster.known_live_count()
        silence = self.config.silence_timeout(n) * self._awareness.multiplier
        times: list[float] = [expires for _, expires in self._roster.tombstones.values()]
        for peer, record in self._roster.records.items():
            if peer == self.self_id:
                continue
            suspicion = record.suspicion
            if record.state is ALIVE or (
                record.state is SUSPECT
                and suspicion is not None
                and self.self_id not in suspicion.bases
            ):
                times.append(record.last_heard + silence)
            if record.state is SUSPECT and suspicion is not None:
                held = suspicion.held() or (
                    self._awareness.starved and suspicion.rests_on_timing_of(self.self_id)
                )
                if not held:
                    deadline = self._deadline(record, suspicion, n, known)
                    repeat = suspicion.repeat_at(deadline)
                    times.append(deadline if repeat is None else min(repeat, deadline))
            elif record.state is DEAD:
                times.append(record.state_since + self.config.dead_forget_after)
            elif record.state is LEFT:
                times.append(record.state_since + self.config.left_forget_after)
        # Self-doubt ages out: a tick then lets the pinger speed up again.
        doubt_ends = self._awareness.doubt.next_change()
        if doubt_ends is not None:
            times.append(doubt_ends)
        return min(times, default=None)
