"""A tuning study's results, written into its folder by each process at its end: the table of
the best trials, ``history.png`` and ``importance.png``, ``study.json``, and the best trial as
a tuned file, ``tuned/<agent>/<env>.yaml``, that carries the budget it was scored with."""

import io
import json
import os
import tempfile
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from torchrl_cli.config.compose import compose_config
from torchrl_cli.tune.search import rounded, short_names
from torchrl_cli.tune.study import OBJECTIVES, StudySetup, format_value

# keys of a trial's config that do not change what it scores: where and how it ran, what it
# showed and kept; the tuned file leaves them to the user
NOT_TUNED = (
    "seed",
    "seeds",
    "tune",
    "logger",
    "save_model",
    "checkpoint_freq",
    "keep_checkpoints",
    "torch_threads",
    "device",
)
TUNED_DIR = "tuned"


def best_trials(optuna_study, study: StudySetup) -> list:
    """The complete trials, best first: by the score (one objective), or the Pareto front by
    its first objective (several)."""
    from optuna.trial import TrialState

    sign = -1 if OBJECTIVES[study.objectives[0]] == "maximize" else 1
    if len(study.objectives) == 1:
        trials = optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    else:
        trials = optuna_study.best_trials
    return sorted(trials, key=lambda t: (sign * t.values[0], t.number))


def write_results(optuna_study, study: StudySetup, cfg: DictConfig, console: Console) -> None:
    from optuna.trial import TrialState

    trials = optuna_study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    best = best_trials(optuna_study, study)
    states = ("complete", "pruned", "fail", "running")  # running: other workers' (or killed)
    summary = ", ".join(f"{counts[s]} {s}" for s in states if counts[s])
    summary = summary.replace(" fail", " failed")
    if best:
        what = "best trials" if len(study.objectives) == 1 else "the Pareto front"
        title = f"{what} of {study.name} ({summary})"
        console.print(table(best[: cfg.tune.top], study, title, width=console.width))
    else:
        console.print(f"no trial of study {study.name} has finished ({summary or 'none run'})")
    written = [write_json(optuna_study, study, best, counts)]
    complete = optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    notes = write_plots(optuna_study, study, complete)
    written += [n for n in notes if n.endswith(".png")]
    console.print(f"wrote {', '.join(str(study.folder / n) for n in written)}", soft_wrap=True)
    for note in notes:
        if not note.endswith(".png"):
            console.print(note, soft_wrap=True)
    if best:
        path = write_tuned(best[0], study, cfg, summary)
        console.print(
            f"best: trial {best[0].number} ({values_text(best[0], study)}) -> {path}; copy it to "
            f"{path.relative_to(study.folder)} in a config folder to train with it",
            soft_wrap=True,
        )


def values_text(trial, study: StudySetup) -> str:
    return ", ".join(
        f"{o} {format_value(o, v)}" for o, v in zip(study.objectives, trial.values, strict=True)
    )


def table(trials: list, study: StudySetup, title: str, width: int | None = None) -> Table:
    """The best trials, rounded: trial number, scores, the values it trained with, seconds. A
    row per trial; a column per trial instead where the rows would be wider than ``width``, so
    that no value is cut short (a study of many parameters in 80 columns)."""
    keys = [p.key for p in study.params]
    names = short_names(keys)
    header = ["trial", *(o.replace("_to_target", " to target") for o in study.objectives)]
    header += [names[key] for key in keys] + ["s"]
    rows = []
    for trial in trials:
        values = trial.user_attrs.get("values", {})
        seconds = trial.duration.total_seconds() if trial.duration is not None else float("nan")
        rows.append([
            str(trial.number),
            *(format_value(o, v) for o, v in zip(study.objectives, trial.values, strict=True)),
            *(rounded(values[k]) if k in values else "-" for k in keys),
            f"{seconds:.0f}",
        ])  # fmt: skip
    out = Table(title=title, title_justify="left")
    cells = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    if width is None or sum(cells) + 3 * len(cells) + 1 <= width:  # rich's padding and rules
        for name in header:
            out.add_column(name, justify="right")
        for row in rows:
            out.add_row(*row)
        return out
    out.add_column("")
    for row in rows:
        out.add_column(f"trial {row[0]}", justify="right")
    for i, name in enumerate(header[1:], start=1):
        out.add_row(name, *(row[i] for row in rows))
    return out


def write_json(optuna_study, study: StudySetup, best: list, counts: Counter) -> str:
    """study.json: the study's settings and budget, counts, the best trials and every trial."""

    def row(trial) -> dict[str, Any]:
        return {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "values": trial.values,
            "params": trial.user_attrs.get("values", {}),
            "seed_returns": trial.user_attrs.get("seed_returns"),
            "last_report": trial.user_attrs.get("last_report"),
            "seconds": trial.duration.total_seconds() if trial.duration is not None else None,
            "worker": trial.user_attrs.get("worker"),
            "error": trial.user_attrs.get("error"),
        }

    data = {
        "study": study.name,
        "storage": study.storage,
        "objectives": study.objectives,
        "directions": [OBJECTIVES[o] for o in study.objectives],
        "budget": optuna_study.user_attrs.get("budget"),
        "counts": dict(counts),
        "best": [row(t) for t in best[:1]]
        if len(study.objectives) == 1
        else [row(t) for t in best],
        "trials": [row(t) for t in optuna_study.get_trials(deepcopy=False)],
    }
    write_file(study.folder / "study.json", (json.dumps(data, indent=2) + "\n").encode())
    return "study.json"


def write_plots(optuna_study, study: StudySetup, complete: list) -> list[str]:
    """history.png and importance.png (Optuna's matplotlib plots of the ``complete`` trials);
    the files written, and a line for each plot that could not be drawn."""
    if not complete:
        return ["history.png and importance.png need a complete trial"]
    try:
        import matplotlib
    except ImportError:
        return ["history.png and importance.png need matplotlib: pip install 'torchrl-cli[tune]'"]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    objective = study.objectives[0]
    label = "mean final return" if objective == "return" else objective.replace("_", " ")
    target = None if len(study.objectives) == 1 else (lambda t: t.values[0])
    notes = []
    plots = {
        "history.png": lambda: plot_optimization_history(
            optuna_study, target=target, target_name=label
        )
    }
    if len({json.dumps(t.params, sort_keys=True) for t in complete}) >= 2:
        plots["importance.png"] = lambda: plot_param_importances(
            optuna_study,
            evaluator=FanovaImportanceEvaluator(seed=0),
            target=target,
            target_name=label,
        )
    else:
        notes.append(
            "importance.png not drawn: it needs 2 complete trials that trained different values"
        )
    for name, plot in plots.items():
        try:
            axes = plot()
        except (ValueError, RuntimeError) as err:  # e.g. every trial trained the same values
            notes.append(f"{name} not drawn: {str(err).splitlines()[0]}")
            continue
        for loc in ("left", "center"):  # the history's title is centred, the importances' left
            if axes.get_title(loc=loc):
                axes.set_title(f"{study.name}: {axes.get_title(loc=loc).lower()}", loc=loc)
        if name == "history.png":
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure = axes.figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        plt.close(figure)
        write_file(study.folder / name, buffer.getvalue())
        notes.append(name)
    return sorted(notes, key=lambda n: not n.endswith(".png"))  # stable: history first


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of a plain container (lists and empty dicts whole)."""
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out |= leaves(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): node}


def tuned_config(trial, cfg: DictConfig, searched: list[str]) -> DictConfig:
    """What the best trial trained with, as a tuned file sets it: every value of its config
    (interpolations kept, so ``agent.lr`` still feeds the optimizers) that differs from the
    agent + env pair without any tuned file, but for NOT_TUNED; the ``searched`` keys and
    ``max_steps`` always, so the schedules annealed over it are the ones scored."""
    scored = compose_config(trial.user_attrs["overrides"])
    plain = compose_config([f"agent={cfg.agent.name}", f"env={cfg.env.id}", "~tuned"])
    mine = leaves(OmegaConf.to_container(scored, resolve=False))
    base = leaves(OmegaConf.to_container(plain, resolve=False))
    tuned = OmegaConf.create()
    for key, value in mine.items():
        if any(key == k or key.startswith(k + ".") for k in NOT_TUNED):
            continue
        if key in ("max_steps", *searched) or key not in base or base[key] != value:
            OmegaConf.update(tuned, key, value, force_add=True)
    return tuned


def write_tuned(trial, study: StudySetup, cfg: DictConfig, summary: str) -> Path:
    """``tuned/<agent>/<env>.yaml`` in the study's folder (``@package _global_``, a header
    that says where it comes from)."""
    tuned = tuned_config(trial, cfg, [p.key for p in study.params])
    relative = Path(TUNED_DIR, cfg.agent.name, f"{cfg.env.id}.yaml")
    path = study.folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    seeds = ",".join(map(str, study.seeds))  # a list textwrap cannot break
    prose = (
        f"{cfg.agent.name} on {cfg.env.id}, tuned by torchrl tune: trial {trial.number} of study "
        f"{study.name} ({study.storage}; {summary}), {values_text(trial, study)}, the mean over "
        f"seeds {seeds}, each trained for max_steps={cfg.max_steps}: the budget its "
        f"schedules were scored with. To train with it, copy this file to {relative} in a "
        "config folder."
    )
    header = [
        "# @package _global_",
        *textwrap.wrap(prose, 96, initial_indent="# ", subsequent_indent="# "),
        f"# command: {trial.user_attrs.get('command', '?')}",
    ]
    write_file(path, ("\n".join(header) + "\n" + OmegaConf.to_yaml(tuned)).encode())
    return path


def write_file(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file of this process and a rename: another
    worker of the study, writing the same file at the same time, leaves a whole file too."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
