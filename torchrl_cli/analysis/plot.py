"""Learning curves: every seed through its real evaluation points, the mean across seeds with a
band from the lowest to the highest seed, for runs that may stop at different steps."""

import textwrap
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


Curves = Mapping[str, Sequence[Curve]]  # label -> its seeds' curves
LEGEND_COLUMNS = 2
TITLE_WIDTH = 80  # characters a title line holds at the figure's width; longer ones wrap


def panels_of(curves: Curves | Mapping[str, Curves]) -> dict[str, Curves]:
    """``{panel name: label -> seeds}``: ``curves`` itself under the name "" when it is one
    panel's mapping (label -> seeds)."""
    nested = any(isinstance(v, Mapping) for v in curves.values())
    return dict(curves) if nested else {"": curves}


def draw_panel(ax, curves: Curves, colors: Mapping[str, str]) -> tuple[dict, bool]:
    """One axes' curves; returns ``{label: (mean line, seeds)}`` and whether a seed stopped
    before the others (held at its last value)."""
    drawn, any_held = {}, False
    for label, runs in curves.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        agg = aggregate(runs)
        any_held |= agg.held
        n, color = len(runs), colors[label]
        sparse = len(agg.steps) <= SPARSE
        (line,) = ax.plot(agg.steps, agg.mean, color=color, linewidth=2,
                          marker="o" if sparse else None, markersize=4, gid=f"{label}/mean",
                          zorder=3)
        drawn[label] = (line, n, agg.held)
        if n > 1:
            ax.fill_between(agg.steps, agg.low, agg.high, color=color, alpha=0.15, linewidth=0)
        last = agg.steps[-1]
        for i, run in enumerate(runs):
            xs, ys = [s for s, _ in run], [r for _, r in run]
            if n > 1:
                ax.plot(xs, ys, color=color, alpha=0.45, linewidth=0.9,
                        marker="." if len(xs) <= SPARSE else None, markersize=4,
                        gid=f"{label}/seed{i}", zorder=2)
            if xs[-1] < last:
                ax.plot(xs[-1], ys[-1], "x", color=color, markersize=8, mew=2, zorder=4)
    return drawn, any_held


def learning_curve_figure(
    curves: Curves | Mapping[str, Curves],
    *,
    title: str,
    target: float | Mapping[str, float] | None = None,
    ylabel: str = "mean evaluation return (deterministic)",
    dpi: int = PlotConfig.dpi,
):
    """A matplotlib Figure: per label, a thin line per seed through its evaluations (a cross
    where a seed stopped early), the mean (thick) and the lowest-to-highest band. Lines carry
    gids ``<label>/seed<i>`` and ``<label>/mean`` for whoever reads the data back.

    ``curves``: label -> seeds' curves, or panel name (an env) -> that, for one axes per panel
    side by side (envs' returns do not share a scale); a label keeps its color in every panel.
    ``target``: a dashed line (per panel name, for panels). The legend sits below the axes,
    where it covers no data, and a long title wraps instead of being cut at the edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    panels = panels_of(curves)
    labels = list(dict.fromkeys(label for panel in panels.values() for label in panel))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(panels), figsize=(8, 5), dpi=dpi, layout="constrained",
                             squeeze=False)
    shown: dict[str, list[int]] = {}  # label -> its number of seeds in each panel
    held: dict[str, bool] = {}
    targets: set[float] = set()  # the target lines drawn
    any_held = False
    for ax, (name, panel) in zip(axes[0], panels.items(), strict=True):
        drawn, panel_held = draw_panel(ax, panel, colors)
        any_held |= panel_held
        for label, (_, n, stopped) in drawn.items():
            shown.setdefault(label, []).append(n)
            held[label] = held.get(label, False) or stopped
        line_target = target.get(name) if isinstance(target, Mapping) else target
        if line_target is not None:
            ax.axhline(line_target, color="black", linestyle="--", linewidth=1)
            targets.add(line_target)
        if name:
            ax.set_title(name, fontsize=10)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    handles = []
    for label in labels:
        if label not in shown:
            continue
        counts = set(shown[label])
        n = counts.pop() if len(counts) == 1 else None
        seeds = f"mean of {n} seed{'s' if n != 1 else ''}" if n else "mean of its seeds"
        text = f"{label}: {seeds}"
        if held[label]:
            text += " (stopped seeds held at their last value)"
        handles.append(Line2D([], [], color=colors[label], linewidth=2, label=text))
    handles.append(Patch(color="grey", alpha=0.3, label="band: lowest to highest seed"))
    handles.append(Line2D([], [], color="grey", alpha=0.6, linewidth=0.9, label="thin: each seed"))
    if any_held:
        handles.append(
            Line2D([], [], color="grey", marker="x", linestyle="", mew=2, label="a seed stopped")
        )
    if targets:
        shown_target = f"target {targets.pop():g}" if len(targets) == 1 else "target"
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=1,
                              label=shown_target))
    # two columns when the entries are short enough to sit side by side within the width
    columns = LEGEND_COLUMNS if max(len(h.get_label()) for h in handles) <= 55 else 1
    rows = -(-len(handles) // columns)
    fig.set_size_inches(8, 4.4 + 0.17 * rows)  # the legend's room below, the axes' kept
    fig.suptitle(textwrap.fill(title, TITLE_WIDTH))
    fig.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=8,
               frameon=False)
    return fig


def plot_learning_curves(
    curves: Curves | Mapping[str, Curves],
    path: str | Path,
    *,
    title: str,
    target: float | Mapping[str, float] | None = None,
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
