"""Learning curves: every seed through its real evaluation points, the mean across seeds with a
band from the lowest to the highest seed, for runs that may stop at different steps."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchrl_cli.config.schema import PlotConfig

Curve = Sequence[tuple[int, float]]  # (env steps, mean evaluation return) points of one run
SPARSE = 30  # a curve with at most this many points gets a marker on each


@dataclass
class Aggregate:
    """The seeds of one configuration on the union of their evaluation steps."""

    steps: np.ndarray
    mean: np.ndarray  # over every seed that has started; finished seeds at their last value
    low: np.ndarray  # the lowest and highest seed at each step, the same way
    high: np.ndarray
    running: np.ndarray  # how many seeds were still training (evaluated at or after the step)
    held: bool  # some seed stopped before the last step, and is held at its last value


def aggregate(runs: Sequence[Curve]) -> Aggregate:
    """Each run's value at every step where any run was evaluated: its own points, linear
    between them, its last value after it stopped (a time-to-solve run stops at the target),
    nothing before its first point. Nothing is cut at the shortest run or resampled, so every
    evaluation (a peak, a run with one point) is a point of the result."""
    steps = np.unique(np.concatenate([[s for s, _ in run] for run in runs])).astype(float)
    values = np.full((len(runs), len(steps)), np.nan)
    running = np.zeros(len(steps), dtype=int)
    for i, run in enumerate(runs):
        xs = np.array([s for s, _ in run], dtype=float)
        ys = np.array([r for _, r in run], dtype=float)
        started = steps >= xs[0]
        values[i, started] = np.interp(steps[started], xs, ys)  # held at ys[-1] after xs[-1]
        running += started & (steps <= xs[-1])
    held = any(run[-1][0] < steps[-1] for run in runs)
    return Aggregate(
        steps,
        np.nanmean(values, axis=0),
        np.nanmin(values, axis=0),
        np.nanmax(values, axis=0),
        running,
        held,
    )


def learning_curve_figure(
    curves: Mapping[str, Sequence[Curve]],
    *,
    title: str,
    target: float | None = None,
    ylabel: str = "mean evaluation return (deterministic)",
    dpi: int = PlotConfig.dpi,
):
    """A matplotlib Figure: per label, a thin line per seed through its evaluations (a cross
    where a seed stopped early), the mean (thick) and the lowest-to-highest band. Lines carry
    gids ``<label>/seed<i>`` and ``<label>/mean`` for whoever reads the data back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(8, 5), dpi=dpi)
    any_held = False
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        agg = aggregate(runs)
        any_held |= agg.held
        n = len(runs)
        name = f"{label}: mean of {n} seed{'s' if n > 1 else ''}"
        if agg.held:
            name += " (stopped seeds held at their last value)"
        sparse = len(agg.steps) <= SPARSE
        (line,) = ax.plot(
            agg.steps,
            agg.mean,
            label=name,
            linewidth=2,
            marker="o" if sparse else None,
            markersize=4,
            gid=f"{label}/mean",
            zorder=3,
        )
        color = line.get_color()
        if n > 1:
            ax.fill_between(agg.steps, agg.low, agg.high, color=color, alpha=0.15, linewidth=0)
        last = agg.steps[-1]
        for i, run in enumerate(runs):
            xs, ys = [s for s, _ in run], [r for _, r in run]
            if n > 1:
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    alpha=0.45,
                    linewidth=0.9,
                    marker="." if len(xs) <= SPARSE else None,
                    markersize=4,
                    gid=f"{label}/seed{i}",
                    zorder=2,
                )
            if xs[-1] < last:
                ax.plot(xs[-1], ys[-1], "x", color=color, markersize=8, mew=2, zorder=4)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(color="grey", alpha=0.3, label="band: lowest to highest seed"))
    handles.append(Line2D([], [], color="grey", alpha=0.6, linewidth=0.9, label="thin: each seed"))
    if any_held:
        handles.append(
            Line2D([], [], color="grey", marker="x", linestyle="", mew=2, label="a seed stopped")
        )
    if target is not None:
        line = ax.axhline(target, color="black", linestyle="--", linewidth=1)
        line.set_label(f"target {target:g}")
        handles.append(line)
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(
    curves: Mapping[str, Sequence[Curve]],
    path: str | Path,
    *,
    title: str,
    target: float | None = None,
    ylabel: str = "mean evaluation return (deterministic)",
    dpi: int = PlotConfig.dpi,
) -> Path:
    """Write ``learning_curve_figure`` to ``path`` (PNG, PDF or SVG by its suffix)."""
    import matplotlib.pyplot as plt

    fig = learning_curve_figure(curves, title=title, target=target, ylabel=ylabel, dpi=dpi)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
