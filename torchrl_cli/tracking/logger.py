"""Logger: averaged values to TensorBoard and the trackers (MLflow, W&B) and, at a readable
cadence, a rich console table, plus a progress bar (training, then each evaluation's episodes)
and one-line events."""

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from torchrl_cli.errors import first_line
from torchrl_cli.tracking.base import Tracker
from torchrl_cli.tracking.console import RunConsole, as_run_console

CONSOLE_MODES = ("full", "table", "quiet")


class _EtaColumn(ProgressColumn):
    """'ETA h:mm:ss' while training, or the task's ``note`` (why it stopped) once it has one.

    The remaining time is the steps left at the mean speed since training started (the task's
    ``sps``), not rich's own estimate: that one needs two updates within 30 s, which a slow
    env's iterations never give, so it showed ``ETA -:--:--`` for the whole run."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        note = task.fields.get("note")
        if note:
            return Text(note, style="progress.remaining")
        sps = task.fields.get("sps")
        if task.total is None or not sps:
            return Text("ETA -:--:--", style="progress.remaining")
        remaining = max(task.total - task.completed, 0) / sps
        minutes, seconds = divmod(int(remaining), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"ETA {hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class _SpeedColumn(ProgressColumn):
    """Steps per second since training started; ``-- steps/s`` until the first iteration has
    ended (no measurement yet, rather than a speed of 0)."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        sps = task.fields.get("sps")
        return Text(f"{sps:>7.0f} steps/s" if sps else "     -- steps/s")


def summary_writer_class() -> type:
    """torch's SummaryWriter, imported without the S3 client that TensorBoard's file layer loads
    whenever boto3 is installed (a quarter of a second of start-up here): a run logs into its
    local run folder, never to s3://."""
    hidden = "boto3" not in sys.modules
    if hidden:
        sys.modules["boto3"] = None  # import boto3 raises ImportError: TensorBoard skips S3
    try:
        from torch.utils.tensorboard import SummaryWriter
    finally:
        if hidden:
            del sys.modules["boto3"]  # importable again by whatever needs it later
    return SummaryWriter


class Logger:
    """Collects values between ``log`` calls and averages them (after the seed's Logger).

    Names follow one scheme for the console and TensorBoard: ``<section>/<name>``, e.g.
    ``charts/episode_return`` or ``losses/approx_kl``. Every ``log`` reaches TensorBoard and
    the trackers; the console shows them as ``mode`` says (the values of
    ``config.schema.LoggerConfig``).

    Parameters:
        log_dir: where TensorBoard events go; ``None`` writes no events.
        console: where tables, lines and the progress bar are printed (a ``RunConsole`` mirrors
            them to train.log).
        progress: show a progress bar with steps/s and ETA (on a terminal only: a pipe or a
            file gets the lines alone).
        histograms: write the histograms given to ``add_histogram`` (off: they are dropped).
        mode: ``full``: a table at every ``log``; ``table``: the first table, then one at most
            every ``table_every_s`` seconds and the last one (``flush_table``); ``quiet``: no
            tables and no per-evaluation lines, only what ``event(..., always=True)`` prints.
        table_every_s: the table cadence of ``mode=table``, in wall seconds.
        start_step: where a resumed run goes on: TensorBoard events this folder holds from
            later steps (written after its checkpoint) are purged, so curves go on without a
            jump back or a duplicate.
        start_seconds: the training time already behind a resumed run.
        trackers: tracked runs (``tracking.base``) that get every scalar TensorBoard gets;
            their owner opens and closes them. One that fails (its server gone) is a warning
            line, once, and training goes on: the run's own files keep the record.
    """

    def __init__(
        self,
        log_dir: str | Path | None,
        *,
        console: Console | RunConsole | None = None,
        progress: bool,
        histograms: bool,
        mode: str,
        table_every_s: float,
        start_step: int = 0,
        start_seconds: float = 0.0,
        trackers: Sequence[Tracker] = (),
    ):
        if mode not in CONSOLE_MODES:
            raise ValueError(f"console mode {mode!r} is not one of {', '.join(CONSOLE_MODES)}")
        self.console = as_run_console(console)
        self.mode = mode
        self.table_every_s = table_every_s
        self.write_histograms = histograms
        self.trackers = trackers
        self._failed_trackers: set[str] = set()
        self.writer = None
        if log_dir is not None:
            SummaryWriter = summary_writer_class()  # TensorBoard only when it logs
            # events up to start_step were logged before the checkpoint: they stay
            self.writer = SummaryWriter(
                str(log_dir), purge_step=start_step + 1 if start_step else None
            )
        self.values: dict[str, list[float]] = defaultdict(list)
        self.precision: dict[str, int] = {}
        self.tf_only: set[str] = set()
        self.histograms: dict[str, torch.Tensor] = {}
        self.progress = None
        if progress and mode != "quiet" and self.console.screen.is_terminal:
            whole = Column(no_wrap=True)  # a narrow terminal shortens the bar, never a field
            self.progress = Progress(
                TextColumn("[bold]{task.description}", table_column=whole),
                BarColumn(bar_width=None),
                MofNCompleteColumn(table_column=whole),
                _SpeedColumn(),
                TimeElapsedColumn(table_column=whole),
                _EtaColumn(table_column=whole),
                console=self.console.screen,
                transient=False,
            )
        self._task = None
        self._total: int | None = None
        self._last_time = start_seconds
        self._last_step = start_step
        self._last_table: float | None = None  # wall time of the last printed table
        self._pending: tuple[str | None, Table] | None = None  # the last table, not printed

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
        """Move the progress bar to ``i_step`` (of ``max_steps``; -1: no known total). The count
        stops at the budget: the last rollout may take a few steps more. The first call starts
        the bar and its clock (``BaseAgent.train`` makes it before the first rollout)."""
        if self.progress is None:
            return
        if self._task is None:
            self.progress.start()
            self._total = max_steps if max_steps > 0 else None
            self._task = self.progress.add_task("training", total=self._total, sps=0.0, note="")
            self._start = (time.perf_counter(), i_step)
        elapsed = time.perf_counter() - self._start[0]
        sps = (i_step - self._start[1]) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self._task, completed=self._capped(i_step), sps=sps)

    def _capped(self, i_step: int) -> int:
        return i_step if self._total is None else min(i_step, self._total)

    @contextmanager
    def evaluating(self, episodes: int) -> Iterator[Callable[..., None]]:
        """While an evaluation runs: a callback taking the number of finished episodes and the
        env steps taken (``run_episodes``' ``on_progress``), which the progress bar shows
        ('evaluating 7/20, step 212') instead of 'training'. The steps tell that it moves when
        every episode ends together (a deterministic policy that balances a pole to the limit
        shows 0/20 until step 500)."""
        if self.progress is None or self._task is None:
            yield lambda done, steps=0: None
            return

        def on_episode(done: int, steps: int = 0) -> None:
            step = f", step {steps}" if steps else ""
            self.progress.update(self._task, description=f"evaluating {done}/{episodes}{step}")

        on_episode(0)
        try:
            yield on_episode
        finally:
            self.progress.update(self._task, description="training")

    def event(self, text: str, always: bool = False) -> None:
        """A one-line event (an evaluation, the target reached): printed unless the console is
        quiet, or always."""
        if always or self.mode != "quiet":
            self.console.print(text)

    def log(self, step: int, header: str | None = None, console: bool = True) -> dict[str, float]:
        """Average what was recorded and write it to TensorBoard and the trackers at ``step``;
        with ``console``, the table is printed as the mode says (or kept for ``flush_table``)."""
        means = {name: sum(v) / len(v) for name, v in self.values.items() if v}
        if self.writer is not None:
            for name, value in means.items():
                self.writer.add_scalar(name, value, step)
            for name, values in self.histograms.items():
                self.writer.add_histogram(name, values, step)
        if means:
            for tracker in self.trackers:
                self._track(tracker, means, step)
        shown = {k: v for k, v in means.items() if k not in self.tf_only}
        if console and shown and self.mode != "quiet":
            self._pending = (header, self._table(shown))
            now = time.perf_counter()
            due = self._last_table is None or now - self._last_table >= self.table_every_s
            if self.mode == "full" or due:
                self.flush_table()
        self.values.clear()
        self.histograms.clear()
        return means

    def _track(self, tracker: Tracker, means: dict[str, float], step: int) -> None:
        try:
            tracker.log_metrics(means, step)
        except Exception as err:
            if tracker.name not in self._failed_trackers:
                self._failed_trackers.add(tracker.name)
                self.console.print(
                    f"[yellow]warning[/yellow]: {tracker.name} did not take the scalars of env "
                    f"step {step} ({escape(first_line(err))}); training goes on (warned once)"
                )

    def flush_table(self) -> None:
        """Print the last table if it was not printed (the end of training shows its state)."""
        if self._pending is None:
            return
        header, table = self._pending
        if header:
            self.console.print(f"[bold]{header}[/bold]")
        self.console.print(table)
        self._pending, self._last_table = None, time.perf_counter()

    def _table(self, means: dict[str, float]) -> Table:
        table = Table(show_header=False, min_width=44)
        table.add_column("name", style="cyan")
        table.add_column("value", justify="right")
        for name in sorted(means):
            table.add_row(name, f"{means[name]:.{self.precision[name]}f}")
        return table

    def close(self, final_step: int | None = None, note: str | None = None) -> None:
        """Stop the progress bar at ``final_step`` with ``note`` in place of the ETA (why it
        stopped) and close the TensorBoard writer."""
        if self.progress is not None and self._task is not None:
            fields = {"note": note} if note else {}
            if final_step is not None:
                fields["completed"] = self._capped(final_step)
            self.progress.update(self._task, **fields)
            self.progress.stop()
            self._task = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
