"""Logger: averaged values to the console table and TensorBoard, read back with TB's reader."""

import io
import subprocess
import sys

import numpy as np
import torch
from conftest import compose_config
from rich.console import Console
from rich.table import Table
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torchrl_cli.agents.evaluation import run_episodes
from torchrl_cli.envs.factory import build_env
from torchrl_cli.tracking.console import RunConsole, make_console
from torchrl_cli.tracking.logger import Logger


def _events(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_values_are_averaged_and_tf_only_values_stay_off_the_console(tmp_path):
    """Two add_log calls average; add_tf_only_log reaches TensorBoard but not the table."""
    out = io.StringIO()
    logger = Logger(tmp_path, console=Console(file=out, width=100), progress=False,
                    histograms=False, mode="full", table_every_s=0.0)
    logger.add_log("losses/value_loss", 1.0)
    logger.add_log("losses/value_loss", 3.0)
    logger.add_tf_only_log("charts/learning_rate_value", 0.5)
    means = logger.log(step=10, header="iteration 1")
    logger.close()
    assert means == {"losses/value_loss": 2.0, "charts/learning_rate_value": 0.5}
    text = out.getvalue()
    assert "iteration 1" in text and "losses/value_loss" in text and "2.00" in text
    assert "learning_rate_value" not in text
    acc = _events(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("losses/value_loss")] == [(10, 2.0)]
    assert [(e.step, e.value) for e in acc.Scalars("charts/learning_rate_value")] == [(10, 0.5)]


def test_histograms_only_when_enabled_and_text(tmp_path):
    """add_histogram writes only with histograms=True; add_text writes the config text."""
    on, off = tmp_path / "on", tmp_path / "off"
    for folder, enabled in ((on, True), (off, False)):
        logger = Logger(folder, console=Console(file=io.StringIO()), progress=False,
                        histograms=enabled, mode="full", table_every_s=0.0)
        logger.add_histogram("rollout/actions", torch.tensor([0.0, 1.0, 1.0, 2.0]))
        logger.add_text("config", "agent: ppo_clip")
        logger.add_log("charts/x", 1.0)
        logger.log(step=5)
        logger.close()
    hist = _events(on).Histograms("rollout/actions")
    assert len(hist) == 1 and hist[0].step == 5 and hist[0].histogram_value.num == 4
    assert "rollout/actions" not in _events(off).Tags()["histograms"]
    assert "config/text_summary" in _events(on).Tags()["tensors"]


def test_timeit_uses_the_callers_clock():
    """Steps per second over the given (training) seconds, not the wall clock."""
    logger = Logger(None, console=Console(file=io.StringIO()), progress=False, histograms=False,
                        mode="full", table_every_s=0.0)
    assert logger.timeit(1000, seconds=2.0) == 500.0
    assert logger.timeit(4000, seconds=3.0) == 3000.0


def _logger(out, mode, every=0.0, progress=False, terminal=False, log_dir=None):
    console = Console(file=out, width=100, force_terminal=terminal)
    return Logger(log_dir, console=console, progress=progress, histograms=False, mode=mode,
                  table_every_s=every)


def _log_iterations(logger, n):
    for i in range(1, n + 1):
        logger.add_log("losses/value_loss", float(i))
        logger.log(step=100 * i, header=f"iteration {i}")


def test_table_mode_prints_the_first_and_the_last_table_and_tensorboard_gets_every_one(tmp_path):
    """console=table with a cadence longer than the run: the first table, then none until
    flush_table prints the last; TensorBoard has all five iterations."""
    out = io.StringIO()
    logger = _logger(out, "table", every=3600.0, log_dir=tmp_path)
    _log_iterations(logger, 5)
    assert out.getvalue().count("iteration") == 1 and "iteration 1" in out.getvalue()
    logger.flush_table()
    logger.flush_table()  # nothing left: printed once
    logger.close()
    text = out.getvalue()
    assert [line for line in text.splitlines() if line.startswith("iteration")] == \
        ["iteration 1", "iteration 5"]
    assert "5.00" in text and "3.00" not in text
    steps = [e.step for e in _events(tmp_path).Scalars("losses/value_loss")]
    assert steps == [100, 200, 300, 400, 500]


def test_full_mode_prints_every_table_and_quiet_only_what_must_be_said():
    full, quiet = io.StringIO(), io.StringIO()
    for out, mode in ((full, "full"), (quiet, "quiet")):
        logger = _logger(out, mode, every=3600.0)
        _log_iterations(logger, 3)
        logger.flush_table()
        logger.event("evaluation at 300 env steps")
        logger.event("target 1 reached", always=True)
        logger.close()
    assert full.getvalue().count("iteration") == 3
    assert "evaluation at 300" in full.getvalue() and "target 1 reached" in full.getvalue()
    assert quiet.getvalue() == "target 1 reached\n"


def test_progress_bar_stops_at_the_budget_shows_evaluations_and_why_it_stopped():
    """The count never passes max_steps; during an evaluation the bar counts its episodes;
    at the end the note replaces the ETA. No bar at all when the console is not a terminal."""
    out = io.StringIO()
    logger = _logger(out, "table", progress=True, terminal=True)
    logger.advance(512, 1000)
    logger.advance(1024, 1000)
    task = logger.progress.tasks[0]
    assert task.completed == 1000 and task.total == 1000
    with logger.evaluating(4) as on_progress:
        on_progress(0, 212)  # every episode still running: the steps show it moves
        assert task.description == "evaluating 0/4, step 212"
        on_progress(3, 230)
        assert task.description == "evaluating 3/4, step 230"
    assert task.description == "training"
    logger.close(final_step=1024, note="target reached")
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "1000/1000" in last and "target reached" in last and "1024" not in last
    assert _logger(io.StringIO(), "table", progress=True).progress is None


def test_the_bar_measures_speed_and_eta_from_the_start_of_training(monkeypatch):
    """Speed and ETA come from the steps since training started (``BaseAgent.train``'s first
    ``advance``): after one iteration of a slow env, not ``0 steps/s, ETA -:--:--``. Before
    that, no measurement rather than a speed of 0."""
    from torchrl_cli.tracking import logger as logger_module

    now = [100.0]
    monkeypatch.setattr(logger_module.time, "perf_counter", lambda: now[0])
    logger = _logger(io.StringIO(), "table", progress=True, terminal=True)
    logger.advance(0, 12_000)  # training starts
    task = logger.progress.tasks[0]
    speed, eta = logger_module._SpeedColumn(), logger_module._EtaColumn()
    assert speed.render(task).plain.strip() == "-- steps/s"
    assert eta.render(task).plain == "ETA -:--:--"
    now[0] = 160.0  # one iteration of 6000 steps took a minute
    logger.advance(6000, 12_000)
    assert speed.render(task).plain.strip() == "100 steps/s"
    assert eta.render(task).plain == "ETA 0:01:00"
    now[0] = 220.0
    logger.close(final_step=12_000)


def test_run_console_mirrors_to_the_log_appends_and_tags_screen_lines(tmp_path):
    """Every print reaches train.log without colors or tags (a second console appends); a
    tag starts each screen line, tables included; long lines are not wrapped in the file."""
    log = tmp_path / "train.log"
    screen = io.StringIO()
    console = RunConsole(Console(file=screen, width=60, force_terminal=False), log)
    long_line = "final evaluation: " + "x" * 150
    console.print(f"[bold]{long_line}[/bold]")
    console.close()
    tagged = RunConsole(Console(file=screen, width=60), log, tag="[job 3]")
    table = Table()
    table.add_column("name")
    table.add_row("losses/value_loss")
    tagged.print(table)
    tagged.close()
    lines = log.read_text().splitlines()
    assert lines[0] == long_line and "[job 3]" not in log.read_text()
    assert any("losses/value_loss" in line for line in lines)
    shown = screen.getvalue().splitlines()
    table_lines = shown[-5:]  # top, header, rule, row, bottom
    assert all(line.startswith("[job 3] ") for line in table_lines), table_lines


def test_make_console_soft_wraps_off_a_terminal():
    out = io.StringIO()
    console = make_console(file=out, width=40)
    console.print("a long line " * 10)
    assert out.getvalue().count("\n") == 1
    assert not make_console(file=io.StringIO(), force_terminal=True).soft_wrap


def test_run_episodes_reports_finished_episodes():
    """on_episode is told each new count of finished episodes, ending at all of them."""
    cfg = compose_config(["env.n_envs=3"])
    env = build_env(cfg.env, 3)
    seen = []
    try:
        run_episodes(lambda obs: np.zeros(len(obs), dtype=np.int64), env, 3, seed=0,
                     on_episode=seen.append)
    finally:
        env.close()
    assert seen == sorted(set(seen)) and seen[-1] == 3 and seen[0] >= 1


def test_run_episodes_reports_progress_after_every_step():
    """on_progress gets (finished episodes, steps taken) after each step, so that a display
    moves while every episode is still running."""
    cfg = compose_config(["env.n_envs=2"])
    env = build_env(cfg.env, 2)
    seen = []
    try:
        _, lengths = run_episodes(lambda obs: np.zeros(len(obs), dtype=np.int64), env, 2,
                                  seed=0, on_progress=lambda *shown: seen.append(shown))
    finally:
        env.close()
    assert [steps for _, steps in seen] == list(range(1, max(lengths) + 1))
    assert seen[0][0] == 0 and seen[-1][0] == 2


def test_tensorboard_is_imported_without_the_s3_client():
    """TensorBoard's file layer imports boto3 (a quarter of a second) whenever it is installed;
    the run's writer is imported without it, and boto3 stays importable for whatever needs it."""
    code = (
        "import importlib.util, sys\n"
        "from torchrl_cli.tracking.logger import summary_writer_class\n"
        "summary_writer_class()\n"
        "assert 'torch.utils.tensorboard' in sys.modules\n"
        "assert 'boto3' not in sys.modules, 'boto3 was imported'\n"
        "if importlib.util.find_spec('boto3') is not None:\n"
        "    import boto3\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
