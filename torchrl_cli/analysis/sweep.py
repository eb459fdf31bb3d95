"""Multirun summaries: which configuration is best, across seeds."""

import json
import os
import re
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console

from torchrl_cli.analysis import summary
from torchrl_cli.run.outputs import ERROR_FILE


class RecordFailures(Callback):
    """Hydra callback: a failed job leaves ``error.txt`` (its error line) in its folder, so the
    sweep summary can list it; it runs in the job's process, whatever the launcher."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the exception; .return_value would re-raise it
            line = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            path = Path(config.hydra.runtime.output_dir, ERROR_FILE)
            try:  # never through a symlink: it would write outside the job's folder
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                with os.fdopen(os.open(path, flags, 0o644), "w") as f:
                    f.write(line + "\n")
            except OSError:  # the disk that failed the job (full, read-only), a symlink
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
    summary.print_table(console, rows, f"sweep summary: {sweep_dir}")
    for job, reason in failed:
        console.print(f"[red]failed[/red] job {job}: {reason}")
    console.print(f"wrote {sweep_dir / 'summary.csv'} and {sweep_dir / 'summary.md'}")
    return failed
