"""Summaries of several runs: one row per configuration, statistics across its seeds."""

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from torchrl_cli.analysis import stats
from torchrl_cli.analysis.stats import bootstrap_ci


@dataclass
class Row:
    """One configuration (a run's overrides without ``seed``) and its runs' final returns."""

    config: str
    seeds: int
    mean_return: float
    std_return: float
    ci_low: float  # 95 % bootstrap interval of the mean across seeds (``stats.bootstrap_ci``)
    ci_high: float
    env_steps: float  # mean across seeds
    wall_seconds: float  # mean across seeds
    # many agents: the final team return (the sum over agents), mean across seeds; the final
    # return above is then the mean over agents of each agent's
    team_return: float | None = None


def run_overrides(run_dir: Path) -> list[str]:
    """A run's command-line overrides, without seed and Hydra's own."""
    path = run_dir / ".hydra" / "overrides.yaml"
    overrides = (yaml.safe_load(path.read_text()) if path.exists() else None) or []
    skip = ("seed=", "seeds=", "hydra.", "hydra/")
    # as typed: a sweep's job gets ``module:EnvId`` values with Hydra's escape, ``module\:EnvId``
    kept = (o.replace("\\:", ":") for o in overrides if not o.startswith(skip))
    return sorted(kept)  # order-independent


def run_label(run_dir: Path, varying: set[str] | None = None) -> str:
    """A run's configuration: its overrides without seed; only the keys in ``varying`` when
    given (the keys that differ between the runs being compared)."""
    kept = [o for o in run_overrides(run_dir) if varying is None or o.split("=", 1)[0] in varying]
    return " ".join(kept) or "(defaults)"


def varying_keys(run_dirs: list[Path]) -> set[str]:
    """Override keys whose value differs between the runs (or is missing in some)."""
    overrides = [dict(o.partition("=")[::2] for o in run_overrides(d)) for d in run_dirs]
    return {k for k in set().union(*overrides) if len({o.get(k) for o in overrides}) > 1}


def load_runs(run_dirs: list[Path]) -> list[tuple[str, dict]]:
    """(label, metrics) of each run folder that has a metrics.json with a final evaluation;
    labels name only the overrides whose values differ between these runs."""
    varying = varying_keys(run_dirs)
    runs = []
    for run_dir in run_dirs:
        path = run_dir / "metrics.json"
        if path.exists():
            metrics = json.loads(path.read_text())
            label = run_label(run_dir, varying)
            for seed_metrics in metrics.get("per_seed", [metrics]):  # seeds=[...] jobs
                if seed_metrics.get("mean_return") is not None:
                    runs.append((label, seed_metrics))
    return runs


def summarize(runs: list[tuple[str, dict]]) -> list[Row]:
    """One Row per label, in the order labels first appear."""
    groups: dict[str, list[dict]] = {}
    for label, metrics in runs:
        groups.setdefault(label, []).append(metrics)
    rows = []
    for label, group in groups.items():
        finals = [m["mean_return"] for m in group]
        low, high = bootstrap_ci(finals, stats.mean)
        teams = [float(np.mean(m["team_returns"])) for m in group if m.get("team_returns")]
        rows.append(
            Row(
                label,
                len(group),
                float(np.mean(finals)),
                float(np.std(finals)),
                low,
                high,
                float(np.mean([m["env_steps"] for m in group])),
                float(np.mean([m["wall_seconds"] for m in group])),
                float(np.mean(teams)) if len(teams) == len(group) else None,
            )
        )
    return rows


def with_teams(rows: list[Row]) -> bool:
    """Whether the rows are of many-agent runs (a team return column)."""
    return any(r.team_return is not None for r in rows)


def cells(r: Row, teams: bool = False) -> list[str]:
    """A row as printed in the console table and the Markdown summary (``teams``: with the
    team return after the final return)."""
    team = [] if not teams else ["-" if r.team_return is None else f"{r.team_return:.1f}"]
    return [
        r.config,
        str(r.seeds),
        f"{r.mean_return:.1f} ± {r.std_return:.1f}",
        *team,
        f"[{r.ci_low:.1f}, {r.ci_high:.1f}]",
        f"{r.env_steps:.0f}",
        f"{r.wall_seconds:.1f}",
    ]


UNBOUNDED = 10_000  # a width no table reaches: its natural width is measured within it
HEADERS = ("seeds", "final return", "95 % CI of mean", "env steps", "wall s")
NARROW_HEADERS = ("seeds", "final\nreturn", "95 % CI\nof mean", "env\nsteps", "wall s")


def table(rows: list[Row], title: str, narrow: bool = False) -> Table:
    """The console table; a configuration is shown as written (``[...]`` values are not
    console markup), one override a line, so that a narrow console wraps between overrides
    and never inside a value. ``narrow``: the numbers' headers on two lines. Many-agent rows
    give the team return under the final return (per agent)."""
    out = Table(title=title, title_justify="left")
    out.add_column("configuration", overflow="fold")
    for name, short in zip(HEADERS, NARROW_HEADERS, strict=True):
        out.add_column(short if narrow else name, justify="right", no_wrap=True)
    teams = with_teams(rows)
    for r in rows:
        config, seeds, final, *rest = cells(r, teams)
        if teams:  # the team return under the per-agent one: no column wider at 80 columns
            final = f"{final}\nteam {rest.pop(0)}"
        out.add_row(escape("\n".join(config.split(" "))), seeds, final, *rest)
    return out


def print_table(console: Console, rows: list[Row], title: str) -> None:
    """Print ``table``: on a terminal within its width (the headers on two lines when that is
    what makes it fit); off a terminal (a pipe, a file, ``| tee``) at the table's natural
    width, since a file has no width to fold a value at."""
    out = table(rows, title)
    natural = console.measure(out, options=console.options.update_width(UNBOUNDED)).maximum
    if not console.is_terminal:
        width = console.width  # print(width=...) cannot widen past the console's own width
        console.width = max(width, natural)
        try:
            console.print(out)
        finally:
            console.width = width
        return
    if natural > console.width:
        out = table(rows, title, narrow=True)
    console.print(out)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=list(asdict(rows[0]) if rows else Row.__annotations__)
        )
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def write_markdown(rows: list[Row], path: Path, failed: list[tuple[str, str]] = ()) -> None:
    teams = with_teams(rows)
    team = " team return (mean) |" if teams else ""
    lines = [
        f"| configuration | seeds | final return (mean ± std) |{team} 95 % CI of the mean "
        "| env steps | wall s |",
        "|---|---|---|---|---|---|" + ("---|" if teams else ""),
    ]
    lines += ["| " + " | ".join(cells(r, teams)) + " |" for r in rows]
    if failed:
        lines += ["", "Failed jobs:", ""] + [f"- {job}: {error}" for job, error in failed]
    path.write_text("\n".join(lines) + "\n")
