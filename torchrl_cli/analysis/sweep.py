"""Multirun summaries: which configuration is best, across seeds."""

import json
import re
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from torchrl_cli.analysis import summary
from torchrl_cli.config.user_dir import FLAG, find_config, user_config_dir
from torchrl_cli.run.outputs import ERROR_FILE


class RecordFailures(Callback):
    """Hydra callback: a failed job leaves ``error.txt`` (its error line) in its folder, so the
    sweep summary can list it; it runs in the job's process, whatever the launcher."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the exception; .return_value would re-raise it
            line = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            try:
                Path(config.hydra.runtime.output_dir, ERROR_FILE).write_text(line + "\n")
            except OSError:  # the disk that failed the job (full, read-only): nothing to add
                pass


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, in job-number order."""

    def number(path: Path) -> int:
        match = re.match(r"\d+", path.name)
        return int(match.group()) if match else 0

    return sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=number)


def unfinished(job: Path) -> str | None:
    """Why a job has no final result: its error line, its interruption, or no metrics."""
    if (job / ERROR_FILE).exists():
        return (job / ERROR_FILE).read_text().strip()
    metrics_file = job / "metrics.json"
    if not metrics_file.exists():
        return "did not finish (no metrics.json)"
    interrupted = json.loads(metrics_file.read_text()).get("interrupted")
    return f"interrupted by {interrupted}" if interrupted else None


def summarize_sweep(sweep_dir: Path, console: Console) -> list[tuple[str, str]]:
    """Print the sweep's table and write summary.csv and summary.md; returns the jobs that
    failed, were interrupted or did not finish, with the reason."""
    jobs = job_dirs(sweep_dir)
    rows = summary.summarize(summary.load_runs(jobs))
    failed = [(job.name, reason) for job in jobs if (reason := unfinished(job))]
    summary.write_csv(rows, sweep_dir / "summary.csv")
    summary.write_markdown(rows, sweep_dir / "summary.md", failed)
    console.print(summary.table(rows, f"sweep summary: {sweep_dir}"))
    for job, reason in failed:
        console.print(f"[red]failed[/red] job {job}: {reason}")
    console.print(f"wrote {sweep_dir / 'summary.csv'} and {sweep_dir / 'summary.md'}")
    return failed


def write_best_tuned(sweep_dir: Path, console: Console) -> Path | None:
    """After an Optuna sweep: the best trial's parameters as a ready-to-use tuned config
    (``best_tuned.yaml``, to copy to ``tuned/<agent>/<env>.yaml`` in the user's config folder,
    where it takes the shipped file's place)."""
    results_file = sweep_dir / "optimization_results.yaml"
    jobs = job_dirs(sweep_dir)
    if not results_file.exists() or not jobs:
        return None
    results = OmegaConf.load(results_file)
    job_cfg = OmegaConf.load(jobs[0] / ".hydra" / "config.yaml")
    target = f"tuned/{job_cfg.agent.name}/{job_cfg.env.id}.yaml"
    # every trial was built on the pair's tuned file: keep what it sets, with the best values
    existing = find_config(target)
    tuned = OmegaConf.load(existing) if existing else OmegaConf.create()
    for key, value in results.best_params.items():
        OmegaConf.update(tuned, key, value, force_add=True)
    user = user_config_dir()
    destination = f"{user}/{target}" if user else f"DIR/{target}"
    header = (
        f"# @package _global_\n# Best trial of the Optuna sweep {sweep_dir} (mean final return "
        f"{results.best_value:.2f} across its seeds), merged into {existing or target}.\n"
        f"# Ready to use: copy it to {destination} and train with {FLAG} "
        f"{user or 'DIR'}.\n"
    )
    path = sweep_dir / "best_tuned.yaml"
    path.write_text(header + OmegaConf.to_yaml(tuned))
    console.print(
        f"best parameters written to {path} (to apply them: copy it to {destination}, "
        f"then torchrl train {FLAG} {user or 'DIR'})"
    )
    return path
