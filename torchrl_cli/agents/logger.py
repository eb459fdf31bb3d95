"""Logger: averaged values to a rich console table and TensorBoard, plus a progress bar."""

import time
from collections import defaultdict
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter


class Logger:
    """Collects values between ``log`` calls and averages them (after the seed's Logger).

    Names follow one scheme for the console and TensorBoard: ``<section>/<name>``, e.g.
    ``charts/episode_return`` or ``losses/approx_kl``.

    Parameters:
        log_dir: where TensorBoard events go; ``None`` writes no events.
        console: where tables and the progress bar are printed.
        progress: show a progress bar with steps/s and ETA.
        histograms: write the histograms given to ``add_histogram`` (off: they are dropped).
        start_step: where a resumed run goes on: TensorBoard events this folder holds from
            later steps (written after its checkpoint) are purged, so curves go on without a
            jump back or a duplicate.
        start_seconds: the training time already behind a resumed run.
    """

    def __init__(
        self,
        log_dir: str | Path | None,
        *,
        console: Console | None = None,
        progress: bool,
        histograms: bool,
        start_step: int = 0,
        start_seconds: float = 0.0,
    ):
        self.console = console or Console()
        self.write_histograms = histograms
        self.writer = None
        if log_dir is not None:
            # events up to start_step were logged before the checkpoint: they stay
            self.writer = SummaryWriter(
                str(log_dir), purge_step=start_step + 1 if start_step else None
            )
        self.values: dict[str, list[float]] = defaultdict(list)
        self.precision: dict[str, int] = {}
        self.tf_only: set[str] = set()
        self.histograms: dict[str, torch.Tensor] = {}
        self.progress = None
        if progress:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>7.0f} steps/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
        self._task = None
        self._last_time = start_seconds
        self._last_step = start_step

    def add_log(self, name: str, value: float, precision: int = 2) -> None:
        """Record a value; values recorded under one name are averaged at the next ``log``."""
        self.values[name].append(float(value))
        self.precision[name] = precision

    def add_tf_only_log(self, name: str, value: float, precision: int = 2) -> None:
        """Like ``add_log`` but written to TensorBoard only, not shown in the console table."""
        self.add_log(name, value, precision)
        self.tf_only.add(name)

    def add_histogram(self, name: str, values: torch.Tensor) -> None:
        if self.write_histograms:
            self.histograms[name] = values.detach().float().cpu()

    def add_text(self, name: str, text: str) -> None:
        if self.writer is not None:
            self.writer.add_text(name, text)

    def timeit(self, i_step: int, max_steps: int = -1, seconds: float | None = None) -> float:
        """Steps per second since the last call, recorded as ``charts/steps_per_second``.

        ``seconds``: the caller's clock (e.g. training time without evaluations); by default
        the wall clock.
        """
        now = time.perf_counter() if seconds is None else seconds
        sps = (i_step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, i_step
        self.add_log("charts/steps_per_second", sps, precision=0)
        self.advance(i_step, max_steps)
        return sps

    def advance(self, i_step: int, max_steps: int = -1) -> None:
        """Move the progress bar to ``i_step`` (of ``max_steps``; -1: no known total)."""
        if self.progress is None:
            return
        if self._task is None:
            self.progress.start()
            total = max_steps if max_steps > 0 else None
            self._task = self.progress.add_task("training", total=total, sps=0.0)
            self._start = (time.perf_counter(), i_step)
        elapsed = time.perf_counter() - self._start[0]
        sps = (i_step - self._start[1]) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self._task, completed=i_step, sps=sps)

    def log(self, step: int, header: str | None = None, console: bool = True) -> dict[str, float]:
        """Average what was recorded, write it to TensorBoard at ``step``, print the table."""
        means = {name: sum(v) / len(v) for name, v in self.values.items() if v}
        if self.writer is not None:
            for name, value in means.items():
                self.writer.add_scalar(name, value, step)
            for name, values in self.histograms.items():
                self.writer.add_histogram(name, values, step)
        if console:
            shown = {k: v for k, v in means.items() if k not in self.tf_only}
            if shown:
                if header:
                    self.console.print(f"[bold]{header}[/bold]")
                self.console.print(self._table(shown))
        self.values.clear()
        self.histograms.clear()
        return means

    def _table(self, means: dict[str, float]) -> Table:
        table = Table(show_header=False, min_width=44)
        table.add_column("name", style="cyan")
        table.add_column("value", justify="right")
        for name in sorted(means):
            table.add_row(name, f"{means[name]:.{self.precision[name]}f}")
        return table

    def close(self, final_step: int | None = None) -> None:
        if self.progress is not None and self._task is not None:
            if final_step is not None:
                self.progress.update(self._task, completed=final_step)
            self.progress.stop()
        if self.writer is not None:
            self.writer.close()
