"""The benchmark plot: convergence and detection times against cluster size, ours and Serf's.

matplotlib is only needed here (the ``bench`` extra); the Agg backend draws without a
screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot"]

PANELS = (
    ("converge", "convergence\n(last node ready → full agreement)"),
    ("kill", "SIGKILL → all see dead"),
    ("freeze", "SIGSTOP → all see dead"),
    ("leave", "SIGTERM → all see left"),
)
# (label, colour, marker and line style) per side.
STYLE = {
    "chorus": ("ours (chorus-health devnet)", "tab:blue", "-o"),
    "Serf": ("Serf", "tab:orange", "--s"),
}


def plot(summary: dict[str, dict[int, dict[str, dict[str, Any]]]], path: Path) -> None:
    """``summary`` as ``devnet.bench_detection.summarise`` returns it: metric -> n -> target
    -> stats. Medians as points, min-max as error bars."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4.0), sharey=False)
    for ax, (metric, title) in zip(axes, PANELS, strict=True):
        by_n = summary.get(metric, {})
        for target, (label, color, style) in STYLE.items():
            points = [
                (n, cell[target])
                for n, cell in sorted(by_n.items())
                if cell.get(target, {}).get("median") is not None
            ]
            if not points:
                continue
            xs = [n for n, _ in points]
            ys = [e["median"] for _, e in points]
            low = [e["median"] - e["min"] for _, e in points]
            high = [e["max"] - e["median"] for _, e in points]
            ax.errorbar(xs, ys, yerr=[low, high], fmt=style, color=color, label=label, capsize=3)
        # Sizes where every run of a side failed (no agreement in time): say so on the plot,
        # or the missing points would read as "not measured".
        for target, (_label, color, _style) in STYLE.items():
            for n, cell in sorted(by_n.items()):
                entry = cell.get(target, {})
                if entry.get("median") is None and entry.get("failed"):
                    ax.annotate(
                        "x\nno agreement",
                        (n, 0),
                        xytext=(0, 6),
                        textcoords="offset points",
                        ha="center",
                        color=color,
                        fontsize=8,
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nodes")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_xticks(sorted(by_n) or [5, 10, 20])
        ax.grid(alpha=0.3)
    # One legend for the figure, from whichever panels have data.
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize=8, loc="lower center", ncol=2)
    fig.suptitle("Median over runs, min-max as bars (lower is better)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
