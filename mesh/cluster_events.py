r"""What the cluster view hands back: the outcome of an input and the actions it asks for.

The view never sends anything itself: an input returns an ``Outcome`` holding its events
(``Event``): state changes (``Transition``, ``mesh.cluster_transitions``) to log and count,
and the actions ``PublishSuspect`` and ``PublishRefute`` for the adapter to carry out.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.cluster_transitions import Transition
from mesh.messages import Version
from mesh.rejection import Rejection

__all__ = ["Event", "Outcome", "PublishRefute", "PublishSuspect"]


@dataclass(frozen=True, slots=True)
class PublishSuspect:
    """Action: publish ``SuspectNotice`` (``Sequencer.suspect(suspect, basis, now,
    refused=refused)``); ``refused``: saying our own dial to it was refused (rule 7)."""

    suspect: str
    basis: Version
    refused: bool = False


@dataclass(frozen=True, slots=True)
class PublishRefute:
    """Action: raise our incarnation to ``incarnation`` and publish a digest at once."""

    incarnation: int


Event = Transition | PublishSuspect | PublishRefute


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input did: the events it caused, or why it was rejected."""

    events: tuple[Event, ...] = ()
    rejection: Rejection | None = None
    note: str = ""  # why an accepted input changed nothing, for debug logs
    # Parts of an accepted snapshot that were turned away (a member over the join gate, a
    # notice from a non-member, ...), each to be counted like a rejection.
    dropped: tuple[Rejection, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.rejection is None
