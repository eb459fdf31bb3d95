"""Multirun summaries: which configuration is best, across seeds."""

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
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
