"""``python -m devnet.simulator --nodes 1000 --loss 0.01 --scenario crash --seed 1``

Prints one row per combination of ``--nodes``, ``--loss`` and ``--seed`` (each may list
several, comma-separated). The table depends on the seed alone; ``--cpu`` adds what the run
cost this host (not reproducible, so printed after the table). ``--sample S`` runs only S
nodes with a view (the victim among them) and the others as light nodes
(``devnet.simulator.light``): the figures are the S full nodes'.
"""

from __future__ import annotations

import argparse
import itertools
import time

from devnet.simulator.report import deep_size, row, table
from devnet.simulator.scenarios import SCENARIOS, Settings, run


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.simulator", description=__doc__)
    parser.add_argument("--nodes", type=_ints, default=[10])
    parser.add_argument(
        "--loss", type=_floats, default=[0.0], help="per-transmission loss, 0.01 = 1 %%"
    )
    parser.add_argument("--seed", type=_ints, default=[1])
    parser.add_argument("--scenario", choices=SCENARIOS, default="crash")
    parser.add_argument("--links", type=int, default=4, help="connections each node dials")
    parser.add_argument("--latency-ms", type=float, default=0.5, help="median one-way link delay")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to watch (0: default)")
    parser.add_argument("--after", type=float, default=0.0, help="join: run on after convergence")
    parser.add_argument(
        "--join-interval", type=float, default=0.01, help="join: seconds between two starts"
    )
    parser.add_argument(
        "--devnet",
        action="store_true",
        help=(
            "the devnet bench's shape: every node on 127.0.0.1, each joining the one before "
            "(--join-interval apart); crash, freeze and leave hit node2, 3, 4 the moment all "
            "views agree"
        ),
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="no admission policy: a refused dial counts only for the node that dialled",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="nodes with a view, the rest light nodes (0: all); not for join nor --devnet",
    )
    parser.add_argument("--cpu", action="store_true", help="also print the host's cost")
    args = parser.parse_args(argv)
    if args.sample and (args.scenario == "join" or args.devnet):
        parser.error("--sample needs a warm start: not for join, nor with --devnet")
    rows = []
    costs = []
    for nodes, loss, seed in itertools.product(args.nodes, args.loss, args.seed):
        settings = Settings(
            nodes=nodes,
            scenario=args.scenario,
            loss=loss,
            seed=seed,
            links=args.links,
            latency=args.latency_ms / 1000.0,
            duration=args.duration,
            after=args.after,
            join_interval=args.join_interval,
            open=args.open,
            one_host=args.devnet,
            chain=args.devnet,
            cold=args.devnet and args.scenario in ("crash", "freeze", "leave"),
            sample=args.sample,
        )
        started = time.perf_counter()
        result = run(settings)
        elapsed = time.perf_counter() - started
        view = result.sample_view
        rows.append(row(result, deep_size(view) if view is not None else 0))
        costs.append(f"{nodes} nodes, loss {loss:g}: {elapsed:.1f} s wall, {result.events} events")
    print(table(rows))
    if any(args.sample and args.sample < nodes for nodes in args.nodes):
        print(
            f"\nSampled: every figure is over the {args.sample} full nodes (a view each); the"
            " others are light nodes (devnet/simulator/light.py)."
        )
    if args.cpu:
        for line in costs:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
