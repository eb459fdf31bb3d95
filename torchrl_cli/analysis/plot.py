"""Learning curves: mean return over env steps with a min-max band across seeds."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

Curve = Sequence[tuple[int, float]]  # (env steps, mean evaluation return) points of one run


def aggregate(runs: Sequence[Curve], points: int = 100) -> tuple[np.ndarray, ...]:
    """Interpolate every run onto a common step grid (up to the shortest run's last step);
    returns the grid and the mean, min and max across runs."""
    end = min(run[-1][0] for run in runs)
    start = max(run[0][0] for run in runs)
    grid = np.linspace(start, end, points) if end > start else np.array([end])
    values = np.stack([np.interp(grid, [s for s, _ in run], [r for _, r in run]) for run in runs])
    return grid, values.mean(0), values.min(0), values.max(0)


def plot_learning_curves(
    curves: Mapping[str, Sequence[Curve]],
    path: str | Path,
    *,
    title: str,
    target: float | None = None,
    ylabel: str = "mean evaluation return (deterministic)",
) -> Path:
    """Write a PNG: one line per label (mean over its runs) and a band from the lowest to the
    highest run; ``target`` draws a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        grid, mean, low, high = aggregate(runs)
        (line,) = ax.plot(grid, mean, label=f"{label} ({len(runs)} seeds)", linewidth=2)
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
