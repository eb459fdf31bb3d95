"""``torchrl compare``: a summary table and learning curves of runs, sweeps or run folders."""

import argparse
import re
import textwrap
from pathlib import Path

import yaml
from rich.console import Console

from torchrl_cli.analysis import summary
from torchrl_cli.cli.usage import WIDTH, wants_help
from torchrl_cli.config.schema import PlotConfig
from torchrl_cli.errors import ConfigError

TAGS = {"eval": "eval/mean_return", "train": "charts/episode_return"}
WHAT = {"eval": "deterministic evaluation return", "train": "training episode return"}
FORMATS = ("png", "pdf", "svg")
YLABEL = {"eval": "mean evaluation return (deterministic)", "train": "episode return (training)"}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are ConfigErrors: one 'torchrl: error:' line and exit code 2."""

    def error(self, message: str):
        raise ConfigError(f"compare: {message}")


def find_runs(folder: Path) -> list[Path]:
    """The run folders (those holding .hydra/) at or below ``folder``, in natural order."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} " + ("is not a folder" if folder.exists() else "not found"))
    if (folder / ".hydra").is_dir():
        return [folder]
    runs = [p.parent for p in folder.rglob(".hydra") if p.is_dir()]
    if not runs:
        raise ConfigError(f"{folder} holds no run folder (a folder with .hydra/ inside)")
    return sorted(
        runs, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]
    )


def read_scalar(events_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(env steps, value) points of one TensorBoard scalar; [] when it was never logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})  # 0: keep all
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]


def run_curves(run_dir: Path, tag: str) -> list[list[tuple[int, float]]]:
    """A run's curves: one from its own events, or one per seed_<s>/ of a seeds=[...] job."""
    dirs = [run_dir, *sorted(run_dir.glob("seed_*"))]
    dirs = [d for d in dirs if any(d.glob("events.out.tfevents.*"))]
    return [curve for curve in (read_scalar(d, tag) for d in dirs) if curve]


def run_config(run_dir: Path) -> dict:
    """A run's composed config as Hydra saved it ({} when it has none)."""
    path = run_dir / ".hydra" / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def env_of(run_dir: Path) -> str:
    return str(run_config(run_dir).get("env", {}).get("id"))


def describe(run_dirs: list[Path]) -> tuple[str, float | None]:
    """A short title for the runs ('<agent> on <env>, <env>', or the envs alone when agents
    differ, which the legend then names; 'N envs' past three) and their shared target, if
    any."""
    cfgs = [run_config(d) for d in run_dirs]
    agents = sorted({str(c.get("agent", {}).get("name")) for c in cfgs})
    envs = sorted({str(c.get("env", {}).get("id")) for c in cfgs})
    targets = {c.get("target_return") for c in cfgs}
    where = ", ".join(envs) if len(envs) <= 3 else f"{len(envs)} envs"
    name = f"{agents[0]} on {where}" if len(agents) == 1 else where
    return name, targets.pop() if len(targets) == 1 else None


def env_targets(run_dirs: list[Path]) -> dict[str, float]:
    """Each env's target, where its runs share one."""
    found: dict[str, set] = {}
    for run in run_dirs:
        cfg = run_config(run)
        found.setdefault(str(cfg.get("env", {}).get("id")), set()).add(cfg.get("target_return"))
    return {env: t.pop() for env, t in found.items() if len(t) == 1 and None not in t}


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem_2``, ``stem_3``... when taken: nothing is overwritten."""
    path, n = folder / f"{stem}.{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}_{n}.{suffix}"
    return path


def make_parser() -> argparse.ArgumentParser:
    """The options of ``torchrl compare`` (its ``--help``, and the commands page's)."""
    parser = _Parser(
        prog="torchrl compare",
        description="Prints a summary table per configuration across seeds (mean ± std, a 95 % "
        "bootstrap interval of the mean, env steps, wall time) and writes compare.png: a line "
        "per seed, their mean, a band from the lowest to the highest seed; one panel per env "
        "when several are compared.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, width=WIDTH),
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run or sweep folders, or parents")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the figure (default: the folder given, or the current folder when "
        "several are given)",
    )
    parser.add_argument("--metric", choices=TAGS, default="eval", help="curves to plot")
    parser.add_argument("--format", choices=FORMATS, default=PlotConfig.format,
                        help="the figure's file format (default: %(default)s)")
    parser.add_argument("--dpi", type=int, default=PlotConfig.dpi,
                        help="the figure's dots per inch (default: %(default)s)")
    return parser


def compare_command(args: list[str], console: Console | None = None) -> int:
    """Print the summary table of the runs in ``args``' folders and write their learning
    curves (compare.png in the one folder given, or --out; never over an existing file)."""
    if wants_help(args):  # printed and returned, not argparse's SystemExit (main() returns)
        print(make_parser().format_help().rstrip())
        return 0
    opts = make_parser().parse_args(args)
    tag = TAGS[opts.metric]
    if opts.dpi < 10:
        raise ConfigError(f"--dpi {opts.dpi} must be at least 10")
    out_dir = opts.out
    if out_dir is None:
        out_dir = opts.folders[0] if len(opts.folders) == 1 else Path(".")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is not a folder")
    curves_of: dict[Path, list] = {}
    for folder in opts.folders:
        found = {run.resolve(): run_curves(run, tag) for run in find_runs(folder)}
        if not any(found.values()):
            other = "train" if opts.metric == "eval" else "eval"
            raise ConfigError(
                f"{folder}: no run has a TensorBoard '{tag}' scalar; "
                f"did they finish? (or try --metric {other})"
            )
        curves_of.update(found)
    varying = summary.varying_keys(list(curves_of))
    envs = {run: env_of(run) for run in curves_of}
    several = len(set(envs.values())) > 1  # one panel per env: their returns share no scale
    panels: dict[str, dict[str, list]] = {}
    for run, found_curves in curves_of.items():
        label = summary.run_label(run, varying - {"env"} if several else varying)
        if label == "(defaults)" and several:  # only the env differs: the agent names them
            label = str(run_config(run).get("agent", {}).get("name"))
        label = textwrap.fill(label, 60)  # long ones squeeze the plot
        panels.setdefault(envs[run] if several else "", {}).setdefault(label, []).extend(
            found_curves)
    console = console or Console()
    rows = summary.summarize(summary.load_runs(list(curves_of)))
    summary.print_table(console, rows, f"compare: {' '.join(map(str, opts.folders))}")
    for run in (run for run, found_curves in curves_of.items() if not found_curves):
        console.print(f"[yellow]left out of the plot[/yellow]: {run} has no '{tag}' scalar")
    name, target = describe(list(curves_of))
    try:
        from torchrl_cli.analysis.plot import plot_learning_curves

        path = plot_learning_curves(
            panels if several else panels[""],
            free_name(out_dir, "compare", opts.format),
            title=f"{name}: {WHAT[opts.metric]} ({tag})",
            target=env_targets(list(curves_of)) if several else target,
            ylabel=YLABEL[opts.metric],
            dpi=opts.dpi,
        )
    except ImportError as err:
        raise ConfigError(
            f"plots need matplotlib ({err}): pip install 'torchrl-cli[plot]'"
        ) from None
    console.print(f"wrote {path}")
    return 0
