"""The simulator's side of ``python -m devnet.scale_run``: the same size, loss and scenarios
as the real run, each over a few seeds, reduced to medians."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from devnet.simulator.scenarios import Result, Settings, run

__all__ = ["simulate"]


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None


def _detection(results: Sequence[Result]) -> dict[str, Any]:
    return {
        "p50": _median([r.percentile(0.5) for r in results]),
        "p99": _median([r.percentile(0.99) for r in results]),
        "seen": min(len(r.seen) for r in results),
        "observers": results[0].observers,
    }


def simulate(n: int, loss: float, seeds: Sequence[int], join_interval: float) -> dict[str, Any]:
    """Join (nodes ``join_interval`` apart, each bootstrapping to the one before, every
    node on its own address as in the namespaces), crash, freeze and an idle window, at
    ``n`` nodes and ``loss``, once per seed."""

    def runs(scenario: str, **extra: Any) -> list[Result]:
        return [
            run(Settings(nodes=n, scenario=scenario, loss=loss, seed=seed, **extra))
            for seed in seeds
        ]

    join = runs("join", chain=True, join_interval=join_interval)
    crash, freeze, idle = runs("crash"), runs("freeze"), runs("idle")
    return {
        "seeds": list(seeds),
        "join": {"median": _median([r.converged_at for r in join])},
        "crash": _detection(crash),
        "freeze": _detection(freeze),
        "false_deaths": sum(r.false_deaths for r in (*join, *crash, *freeze, *idle)),
        "idle": {
            "bytes_per_s": statistics.median(r.bytes / (r.window * n) for r in idle),
            "messages_per_s": statistics.median(r.messages / (r.window * n) for r in idle),
        },
    }
