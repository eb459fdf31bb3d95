"""Multirun summaries: which configuration is best, across seeds."""

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from torchrl_cli import summary


class RecordFailures(Callback):
    """Hydra callback: a failed job leaves ``error.txt`` (its error line) in its folder, so the
    sweep summary can list it; it runs in the job's process, whatever the launcher."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the exception; .return_value would re-raise it
            line = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            Path(config.hydra.runtime.output_dir, "error.txt").write_text(line + "\n")


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()),
        key=lambda p: int(p.name.split("_", 1)[0]) if p.name[0].isdigit() else 0,
    )


def summarize_sweep(sweep_dir: Path, console: Console) -> list[tuple[str, str]]:
    """Print the sweep's table and write summary.csv and summary.md; returns failed jobs."""
    jobs = job_dirs(sweep_dir)
    rows = summary.summarize(summary.load_runs(jobs))
    failed = [
        (job.name, (job / "error.txt").read_text().strip())
        for job in jobs
        if (job / "error.txt").exists()
    ]
    summary.write_csv(rows, sweep_dir / "summary.csv")
    summary.write_markdown(rows, sweep_dir / "summary.md", failed)
    console.print(summary.table(rows, f"sweep summary: {sweep_dir}"))
    for job, error in failed:
        console.print(f"[red]failed[/red] job {job}: {error}")
    console.print(f"wrote {sweep_dir / 'summary.csv'} and {sweep_dir / 'summary.md'}")
    return failed


def write_best_tuned(sweep_dir: Path, console: Console) -> Path | None:
    """After an Optuna sweep: the best trial's parameters as a ready-to-use tuned config
    (``best_tuned.yaml``, to copy to conf/tuned/<agent>/<env>.yaml)."""
    results_file = sweep_dir / "optimization_results.yaml"
    jobs = job_dirs(sweep_dir)
    if not results_file.exists() or not jobs:
        return None
    results = OmegaConf.load(results_file)
    job_cfg = OmegaConf.load(jobs[0] / ".hydra" / "config.yaml")
    tuned = OmegaConf.create()
    for key, value in results.best_params.items():
        OmegaConf.update(tuned, key, value, force_add=True)
    target = f"conf/tuned/{job_cfg.agent.name}/{job_cfg.env.id}.yaml"
    header = (
        f"# @package _global_\n# Best trial of the Optuna sweep {sweep_dir} (mean final "
        f"return {results.best_value:.2f} across its seeds).\n# Ready to use: copy to "
        f"{target}\n"
    )
    path = sweep_dir / "best_tuned.yaml"
    path.write_text(header + OmegaConf.to_yaml(tuned))
    console.print(f"best parameters written to {path} (copy to {target})")
    return path
