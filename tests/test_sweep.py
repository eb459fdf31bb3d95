"""Multirun summaries: one row per configuration across seeds; failed jobs are listed."""

import csv
import subprocess

import numpy as np
import pytest
from conftest import TINY

from torchrl_cli.analysis.stats import bootstrap_ci, mean


def _multirun(tmp_path, torchrl_bin, cli_env, *overrides):
    proc = subprocess.run([torchrl_bin, "train", "-m", *TINY, *overrides], cwd=tmp_path,
                          env=cli_env, capture_output=True, text=True, timeout=300)
    sweep = next(tmp_path.glob("runs/*/*_multirun"))
    return proc, sweep


def test_two_by_two_sweep_writes_one_row_per_configuration(tmp_path, torchrl_bin, cli_env):
    """seed=0,1 x agent.lr=1e-3,3e-4: two rows (the lr values), each over 2 seeds."""
    proc, sweep = _multirun(tmp_path, torchrl_bin, cli_env, "seed=0,1", "agent.lr=1e-3,3e-4")
    assert proc.returncode == 0, proc.stderr
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == ["agent.lr=0.001", "agent.lr=0.0003"]
    assert all(r["seeds"] == "2" and float(r["env_steps"]) == 256 for r in rows)
    for row in rows:
        assert float(row["ci_low"]) <= float(row["mean_return"]) <= float(row["ci_high"])
    markdown = (sweep / "summary.md").read_text()
    assert "| agent.lr=0.001 | 2 |" in markdown and "Failed jobs" not in markdown
    assert "sweep summary" in proc.stdout and "agent.lr=0.0003" in proc.stdout


def test_partly_failed_sweep_still_summarizes_and_lists_failures(tmp_path, torchrl_bin,
                                                                  cli_env):
    """net=mlp,nature_cnn on CartPole: the CNN job fails at build time; the summary keeps the
    mlp row, lists the failed job with its error line, and the command exits non-zero."""
    proc, sweep = _multirun(tmp_path, torchrl_bin, cli_env, "net=mlp,nature_cnn")
    assert proc.returncode != 0
    with (sweep / "summary.csv").open() as f:
        assert [r["config"] for r in csv.DictReader(f)] == ["net=mlp"]
    markdown = (sweep / "summary.md").read_text()
    assert "Failed jobs" in markdown and "1_ppo_clip_CartPole-v1" in markdown
    assert (sweep / "1_ppo_clip_CartPole-v1" / "error.txt").exists()
    assert "failed job 1_ppo_clip_CartPole-v1" in proc.stdout


def test_bootstrap_ci():
    """Constant values: a zero-width interval; otherwise it holds the mean, inside the range,
    and the same seed gives the same interval."""
    assert bootstrap_ci([5.0, 5.0, 5.0], mean) == (5.0, 5.0)
    assert bootstrap_ci([7.0], mean) == (7.0, 7.0)
    values = [1.0, 2.0, 3.0, 10.0]
    low, high = bootstrap_ci(values, mean)
    assert min(values) <= low < np.mean(values) < high <= max(values)
    assert bootstrap_ci(values, mean) == (low, high)
    assert high - low == pytest.approx(bootstrap_ci(values, mean, resamples=20_000)[1]
                                       - bootstrap_ci(values, mean, resamples=20_000)[0], rel=0.2)


def test_joblib_launcher_runs_jobs_in_parallel(tmp_path, torchrl_bin, cli_env):
    """hydra/launcher=joblib with 2 workers: the jobs run in two processes at the same time."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc, sweep = _multirun(tmp_path, torchrl_bin, cli_env, "hydra/launcher=joblib",
                            "hydra.launcher.n_jobs=2", "seed=0,1", "max_steps=16384")
    assert proc.returncode == 0, proc.stderr
    spans, pids = [], set()
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        events = next(job.glob("events.out.tfevents.*"))
        pids.add(events.name.split(".")[-2])
        acc = EventAccumulator(str(job))
        acc.Reload()
        times = [e.wall_time for e in acc.Scalars("charts/steps_per_second")]
        spans.append((min(times), max(times)))
    assert len(spans) == 2 and len(pids) == 2
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a  # the two training spans overlap


def test_seeds_in_one_job_return_their_mean(tmp_path):
    """seeds=[0,1]: one run folder per seed inside the job, and the job's metrics are the
    means across them."""
    from conftest import compose_config

    from torchrl_cli.run.train import train_seeds

    metrics = train_seeds(compose_config([*TINY, "seeds=[0,1]"]), tmp_path)
    assert [m["seed"] for m in metrics["per_seed"]] == [0, 1]
    assert (tmp_path / "seed_0" / "metrics.json").exists()
    assert (tmp_path / "seed_1" / "model.pt").exists()
    finals = [m["mean_return"] for m in metrics["per_seed"]]
    assert metrics["mean_return"] == pytest.approx(np.mean(finals))
    assert (tmp_path / "metrics.json").exists()


def test_job_time_config_error_fails_one_job_not_the_sweep(tmp_path, torchrl_bin, cli_env):
    """Values that pass one at a time can clash in a combination (2 steps x 1 env = 2 samples
    for 4 minibatches): that job fails, the other three still run and are summarized."""
    proc, sweep = _multirun(tmp_path, torchrl_bin, cli_env, "agent.n_steps=64,2",
                            "env.n_envs=4,1", "agent.policy.num_mini_batches=4",
                            "agent.value.num_mini_batches=4")
    assert proc.returncode != 0
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    assert sum((job / "metrics.json").exists() for job in jobs) == 3
    failed = [job for job in jobs if (job / "error.txt").exists()]
    assert len(failed) == 1 and "num_mini_batches=4 is too many" in (
        failed[0] / "error.txt").read_text()
    assert "Failed jobs" in (sweep / "summary.md").read_text()


def test_labels_do_not_depend_on_override_order(tmp_path):
    """`agent=a2c env=X` and `env=X agent=a2c` are one configuration."""
    import json

    from torchrl_cli.analysis.summary import load_runs, summarize

    for name, overrides in (("a", ["agent=a2c", "lr=1", "seed=0"]),
                            ("b", ["lr=1", "agent=a2c", "seed=1"]),
                            ("c", ["agent=ppo_clip", "lr=1", "seed=0"])):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(
            "\n".join(f"- {o}" for o in overrides) + "\n")
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"mean_return": 1.0, "env_steps": 10, "wall_seconds": 1.0}))
    rows = summarize(load_runs([tmp_path / n for n in "abc"]))
    assert [(r.config, r.seeds) for r in rows] == [("agent=a2c", 2), ("agent=ppo_clip", 1)]


def test_repeated_seeds_and_print_flags_with_multirun_are_refused(tmp_path, torchrl_bin,
                                                                  cli_env):
    """seeds=[0,0] and `-m --cfg job` get one-line errors and exit 2, no traceback."""
    for args in (["seeds=[0,0]"], ["-m", "--cfg", "job", "seed=0,1"]):
        proc = subprocess.run([torchrl_bin, "train", *args], cwd=tmp_path, env=cli_env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("torchrl: error:") and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_the_summary_table_shows_bracketed_values_as_written():
    """``env.imports=[popgym]`` is an override, not console markup: the table keeps it."""
    from rich.console import Console

    from torchrl_cli.analysis.summary import Row, table

    console = Console(width=100, record=True)
    console.print(table([Row("env.imports=[popgym]", 1, 1.0, 0.0, 1.0, 1.0, 100, 1.0)], "t"))
    assert "env.imports=[popgym]" in console.export_text()


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_the_summary_table_keeps_every_override_whole_at_80_columns(terminal):
    """At 80 columns a value is never folded (``agent.lr=0.000`` / ``3``): on a terminal the
    overrides go one a line and the headers on two lines; off a terminal (a pipe, a file) the
    table keeps its natural width."""
    import io

    from rich.console import Console
    from rich.text import Text

    from torchrl_cli.analysis.summary import Row, print_table

    overrides = ["agent.lr=0.0003", "env.n_envs=8"] if terminal else [
        "agent.lr=0.0003", "env.imports=[popgym,minigrid]", "agent.policy.ppo_clip_range=0.1"]
    rows = [Row(" ".join(overrides), 5, 475.5, 10.0, -1475.5, 475.5, 1_000_000, 1234.2),
            Row("agent.lr=0.001", 1, 77.5, 0.0, 77.5, 77.5, 512, 0.2)]
    console = Console(width=80, force_terminal=terminal, no_color=True, file=io.StringIO())
    print_table(console, rows, "sweep summary: runs/x")
    lines = [Text.from_ansi(line).plain for line in console.file.getvalue().splitlines()]
    cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert [c for c in cells if c] == [*overrides, "agent.lr=0.001"], "\n".join(lines)
    assert "[-1475.5, 475.5]" in console.file.getvalue()
    if terminal:
        assert max(len(line) for line in lines) <= 80
