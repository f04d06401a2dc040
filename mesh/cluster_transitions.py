"""The member state machine as data: the causes of a change and the table of transitions.

Like h11's ``_state.py``, the states a member can be in (``MemberState``: alive, suspect,
dead, left) and what moves it between them are a table, not code. The handlers of the view
(``mesh.cluster_view`` and its parts) work out which cause applies, by the numbered rules
of ``mesh.cluster_view``, and look the new state up here; ``Transition`` records each change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from mesh.messages import MemberState
from mesh.model import Status

__all__ = [
    "ALIVE",
    "DEAD",
    "LEFT",
    "SUSPECT",
    "TIMING_EVIDENCE",
    "TRANSITIONS",
    "Cause",
    "Transition",
]

ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


class Cause(StrEnum):
    JOINED = "joined"  # first digest of a peer (or first sight in a snapshot)
    DIGEST = "digest"  # a newer digest of the same life
    REFUTED = "refuted"  # a newer digest with a higher incarnation answered the suspicion
    RESTARTED = "restarted"  # a digest of a newer life (start time)
    LEAVE = "leave"  # the peer said it is leaving
    STOPPED = "stopped"  # failure evidence about a peer that said it was stopping
    DISCONNECTED = "disconnected"  # libp2p closed our last connection to it
    REFUSED = "refused"  # our dial to its advertised address was refused (rule 7)
    PING_FAILED = "ping_failed"  # a liveness ping went unanswered (adapters/pinger.py)
    SILENCE = "silence"  # no new digest for the silence timeout
    SUSPECT_NOTICE = "suspect_notice"  # another observer suspects it
    SUSPICION_TIMEOUT = "suspicion_timeout"  # suspected for the whole suspicion timeout
    LOCAL_RECOVERY = "local_recovery"  # we recovered; our starved suspicion is withdrawn
    FORGOTTEN = "forgotten"  # dead or left for long enough


# Our own evidence that depends on our timing being right (rule 8).
TIMING_EVIDENCE = frozenset({Cause.SILENCE, Cause.PING_FAILED})

# (state, cause) -> next state; None means the member is dropped from the view. A pair that
# is not listed is a cause that does not apply in that state: the handlers never look it up.
#
#   state    | DIGEST  REFUTED RESTARTED LEAVE STOPPED evidence* TIMEOUT RECOVERY FORGOTTEN
#   ---------+-----------------------------------------------------------------------------
#   alive    | alive   -       alive     left  left    suspect   -       -        -
#   suspect  | alive   alive   alive     left  -***    suspect   dead    alive    -
#   dead     | alive   alive   alive     left  -       -         -       -        (gone)
#   left     | alive   -       alive     left  -       -         -       -        (gone)
#
#   * DISCONNECTED, REFUSED, PING_FAILED, SILENCE, SUSPECT_NOTICE; on a suspect: a
#     confirmation (REFUSED also brings its death forward, rule 7).
#   *** a suspect's newer digest always answers its suspicions (no basis is ahead of what
#      we hold, rule 3), so a "stopping" digest finds it alive, never suspect.
TRANSITIONS: Mapping[tuple[MemberState, Cause], MemberState | None] = MappingProxyType(
    {
        (ALIVE, Cause.DIGEST): ALIVE,
        (ALIVE, Cause.RESTARTED): ALIVE,
        (ALIVE, Cause.LEAVE): LEFT,
        (ALIVE, Cause.STOPPED): LEFT,
        (ALIVE, Cause.DISCONNECTED): SUSPECT,
        (ALIVE, Cause.REFUSED): SUSPECT,
        (ALIVE, Cause.PING_FAILED): SUSPECT,
        (ALIVE, Cause.SILENCE): SUSPECT,
        (ALIVE, Cause.SUSPECT_NOTICE): SUSPECT,
        (SUSPECT, Cause.DIGEST): ALIVE,
        (SUSPECT, Cause.REFUTED): ALIVE,
        (SUSPECT, Cause.RESTARTED): ALIVE,
        (SUSPECT, Cause.LEAVE): LEFT,
        (SUSPECT, Cause.DISCONNECTED): SUSPECT,
        (SUSPECT, Cause.REFUSED): SUSPECT,
        (SUSPECT, Cause.PING_FAILED): SUSPECT,
        (SUSPECT, Cause.SILENCE): SUSPECT,
        (SUSPECT, Cause.SUSPECT_NOTICE): SUSPECT,
        (SUSPECT, Cause.SUSPICION_TIMEOUT): DEAD,
        (SUSPECT, Cause.LOCAL_RECOVERY): ALIVE,
        (DEAD, Cause.DIGEST): ALIVE,
        (DEAD, Cause.REFUTED): ALIVE,
        (DEAD, Cause.RESTARTED): ALIVE,
        (DEAD, Cause.LEAVE): LEFT,
        (DEAD, Cause.FORGOTTEN): None,
        (LEFT, Cause.DIGEST): ALIVE,
        (LEFT, Cause.RESTARTED): ALIVE,
        (LEFT, Cause.LEAVE): LEFT,
        (LEFT, Cause.FORGOTTEN): None,
    }
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a member's state or self-reported status, kept in the history."""

    peer: str
    at: float  # the ``now`` of the event that caused it
    from_state: MemberState | None  # None: the peer was not in the view
    to_state: MemberState | None  # None: the peer was forgotten
    cause: Cause
    from_status: Status | None = None
    to_status: Status | None = None
    detail: str = ""
