"""Interrupt, kill and resume through the real CLI: the resumed run is the uninterrupted one."""

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, snapshot, torchrl
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torchrl_cli.run.checkpoint import load_checkpoint, step_checkpoints

# PPO-clip on CartPole with running state normalization: every piece of state a resume must
# carry (optimizers, normalizer statistics, the env's episodes in progress, RNG) matters here.
RUN = ["train", "seed=3", "env.running_normalize_states=true", "max_steps=40960",
       "checkpoint_freq=2048", "eval_freq=8192", "eval_episodes=5", "logger.progress=false"]


def start(binary: str, args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([binary, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(proc: subprocess.Popen, folder: Path, newer_than: int = -1) -> None:
    """Until the run writes a checkpoint of more than ``newer_than`` env steps."""
    deadline = time.monotonic() + 90
    while True:
        steps = [int(p.stem.split("_")[1]) for p in step_checkpoints(folder / "checkpoints")] \
            if (folder / "checkpoints").is_dir() else []
        if steps and max(steps) > newer_than:
            return
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint in 90 s"
        time.sleep(0.05)


def last_steps(folder: Path) -> int:
    return int(step_checkpoints(folder / "checkpoints")[-1].stem.split("_")[1])


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, torchrl_bin, cli_env) -> Path:
    cwd = tmp_path_factory.mktemp("uninterrupted")
    proc = torchrl(torchrl_bin, [*RUN, "hydra.run.dir=run"], cwd, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd / "run"


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Same final evaluation, same evaluations on the way, same final weights and statistics,
    and TensorBoard curves that go on without a restart or a duplicated step."""
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (resumed, reference))
    for key in ("returns", "env_steps", "iterations", "mean_return"):
        assert got[key] == want[key], key
    assert [e["mean_return"] for e in got["evaluations"]] == \
        [e["mean_return"] for e in want["evaluations"]]
    got_model, want_model = (torch.load(d / "model.pt", weights_only=True)
                             for d in (resumed, reference))
    for part in ("policy", "value", "state_normalizer"):
        for key, tensor in want_model[part].items():
            assert torch.equal(got_model[part][key], tensor), f"{part}.{key}"
    for tag in ("charts/episode_return", "losses/value_loss", "eval/mean_return"):
        assert scalars(resumed, tag) == scalars(reference, tag), tag


def test_ctrl_c_then_resume_equals_uninterrupted(tmp_path, torchrl_bin, cli_env, uninterrupted):
    """Ctrl-C saves a checkpoint and prints the resume command; running it finishes the run
    exactly as if it had never stopped."""
    proc = start(torchrl_bin, [*RUN, "hydra.run.dir=run"], tmp_path, cli_env)
    wait_for_checkpoint(proc, tmp_path / "run")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert "interrupted by SIGINT after" in out
    assert f"checkpoint saved: run/checkpoints/step_{last_steps(tmp_path / 'run'):09d}.pt" in out
    assert out.rstrip().endswith("resume with: torchrl train resume=run")
    resumed = torchrl(torchrl_bin, ["train", "resume=run"], tmp_path, cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from run/checkpoints/step_" in resumed.stdout
    assert_same_run(tmp_path / "run", uninterrupted)


def test_sigint_and_kill_9_at_random_points_always_resume(tmp_path, torchrl_bin, cli_env,
                                                          uninterrupted):
    """SIGINT, then kill -9 three times at random moments of resumed runs: each time an intact
    checkpoint is there to resume from, and the end result is still the uninterrupted run."""
    rng = random.Random(7)
    run = tmp_path / "run"
    proc = start(torchrl_bin, [*RUN, "hydra.run.dir=run"], tmp_path, cli_env)
    wait_for_checkpoint(proc, run)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    kills = 0
    for _ in range(3):
        before = last_steps(run)
        proc = start(torchrl_bin, ["train", "resume=run"], tmp_path, cli_env)
        wait_for_checkpoint(proc, run, newer_than=before)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        if proc.wait(timeout=30) == 0:
            break  # it finished before the kill landed
        kills += 1
        for path in [*step_checkpoints(run / "checkpoints"), run / "checkpoints" / "best.pt"]:
            if path.exists():
                assert load_checkpoint(path).env_steps > 0  # every file whole
    else:
        final = torchrl(torchrl_bin, ["train", "resume=run"], tmp_path, cli_env)
        assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 1
    assert_same_run(run, uninterrupted)
    assert not list((run / "checkpoints").glob(".*.tmp"))  # a kill's partial write is cleared


@pytest.mark.parametrize(("args", "needles"), [
    (["resume=nowhere"], ["run folder nowhere does not exist"]),
    (["resume=notarun"], ["notarun is not a torchrl-cli run folder"]),
    (["resume=run", "env=Pendulum-v1"], ["env=Pendulum-v1 conflicts with run",
                                         "env.id=CartPole-v1"]),
    (["resume=run", "agent.lr=0.5"], ["agent.lr=0.5 conflicts with run"]),
    (["resume=run"], ["already finished", "max_steps="]),
    (["resume=run", "-m"], ["takes no Hydra flags"]),
], ids=["missing", "not-a-run", "other-env", "other-lr", "finished", "multirun"])
def test_bad_resume_is_one_line_and_touches_nothing(torchrl_bin, cli_env, uninterrupted,
                                                     args, needles):
    cwd = uninterrupted.parent  # holds the finished run "run"
    (cwd / "notarun").mkdir(exist_ok=True)
    before = snapshot(uninterrupted)
    assert_one_line_error(torchrl(torchrl_bin, ["train", *args], cwd, cli_env), *needles)
    assert snapshot(uninterrupted) == before


def test_truncated_checkpoint_is_named_and_left_alone(tmp_path, torchrl_bin, cli_env,
                                                      uninterrupted):
    """A truncated last checkpoint: one line naming the file; no file changes."""
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    last = step_checkpoints(run / "checkpoints")[-1]
    last.write_bytes(last.read_bytes()[:1000])
    before = snapshot(run)
    proc = torchrl(torchrl_bin, ["train", "resume=run", "max_steps=20000"], tmp_path, cli_env)
    assert_one_line_error(proc, f"checkpoint run/checkpoints/{last.name} is truncated or corrupted")
    assert snapshot(run) == before


def test_resume_extends_the_budget_in_the_same_folder(tmp_path, torchrl_bin, cli_env,
                                                      uninterrupted):
    """A finished run trains on with a larger max_steps; the folder keeps one event stream
    whose steps only grow."""
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    proc = torchrl(torchrl_bin, ["train", "resume=run", "max_steps=45056"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["env_steps"] >= 45056
    steps = [s for s, _ in scalars(run, "losses/value_loss")]  # written every iteration
    assert steps == sorted(set(steps)) and steps[-1] >= 45056
    log = (run / "train.log").read_text()  # the first run's lines, then the resume's
    assert log.count("torchrl train ppo_clip") == 2 and log.count("final evaluation") == 2
    assert log.index("resumed from") > log.index("final evaluation")
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [".hydra", "checkpoints"]
