"""How a simulated host runs what it does: late by its starvation lag, held while frozen.

Shared by the full node (``devnet.simulator.node``) and the light one
(``devnet.simulator.light``), so both starve and freeze alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from devnet.simulator.events import Timer
from devnet.simulator.kernel import Kernel, Life

__all__ = ["HostClock"]


class HostClock:
    """The subclass sets these in its ``__init__``."""

    cluster: Kernel
    rng: random.Random
    life: Life
    lag: float  # mean extra delay of everything this host runs (CPU starvation)
    backlog: list[Callable[[], None]]  # what arrived while frozen, run at the thaw

    def later(self, delay: float, action: Callable[[], None]) -> Timer:
        """A timer of this host: late by the starvation lag, held while frozen."""
        if self.lag > 0:
            delay += self.rng.expovariate(1.0 / self.lag)
        return self.cluster.loop.later(delay, lambda: self.run(action))

    def run(self, action: Callable[[], None]) -> None:
        if self.life is Life.UP:
            action()
        elif self.life is Life.FROZEN:
            self.backlog.append(action)

    @property
    def now(self) -> float:
        return self.cluster.loop.now

    @property
    def wall(self) -> float:
        return self.cluster.wall0 + self.cluster.loop.now
