"""After training: `torchrl eval`, videos, `load_policy`, `torchrl export`, and safe loading."""

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch
from conftest import TINY, assert_no_traceback, assert_one_line_error, compose_config, snapshot
from conftest import torchrl as run_cli

import torchrl_cli
from torchrl_cli.agents.evaluation import EVAL_SEED_OFFSET, run_episodes
from torchrl_cli.envs.factory import build_env
from torchrl_cli.run.checkpoint import read_checkpoint, step_checkpoints
from torchrl_cli.run.train import train

# Long enough that the returns differ between episodes, short enough for a test.
RUN = [o for o in TINY if not o.startswith(("max_steps", "eval_"))] + [
    "max_steps=4096", "eval_freq=2048", "eval_episodes=6", "checkpoint_freq=1024",
    "env.running_normalize_states=true", "seed=1"]


def train_run(folder: Path, overrides: list[str]) -> Path:
    cfg = compose_config(overrides)
    folder.mkdir(parents=True)
    train(cfg, folder)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A CartPole run, a Pendulum run (Box actions: clipping) and a run with another net."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "cartpole": train_run(root / "cartpole", RUN),
        "pendulum": train_run(root / "pendulum", [*RUN, "env=Pendulum-v1"]),
        "large": train_run(root / "large", [*RUN, "net=mlp_large"]),
    }


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_load_policy_and_export_reproduce_the_final_evaluation(runs, tmp_path, name):
    """load_policy and the exported file replay the final evaluation's episodes exactly."""
    run = runs[name]
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(set(metrics["returns"])) > 1 or name == "cartpole"
    cfg = compose_config(RUN if name == "cartpole" else [*RUN, "env=Pendulum-v1"])
    env = build_env(cfg.env, cfg.eval_episodes, evaluation=True)
    seed = cfg.seed + EVAL_SEED_OFFSET
    policy = torchrl_cli.load_policy(run)
    try:
        returns, _ = run_episodes(policy, env, cfg.eval_episodes, seed)
        assert returns == pytest.approx(metrics["returns"], rel=1e-5)
        out = tmp_path / "policy.pt2"
        from torchrl_cli.run.policy import export_policy

        export_policy(policy, out)
        program = torch.export.load(out).module()
        returns, _ = run_episodes(lambda obs: program(torch.as_tensor(obs)).numpy(), env,
                                  cfg.eval_episodes, seed)
        assert returns == pytest.approx(metrics["returns"], rel=1e-5)
    finally:
        env.close()


def test_exported_file_runs_with_torch_alone(runs, tmp_path, torchrl_bin, cli_env):
    """`torchrl export` writes a file that a process importing only torch can run."""
    run = runs["cartpole"]
    proc = run_cli(torchrl_bin, ["export", str(run), f"out={tmp_path / 'p.pt2'}"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch.export.load(" in proc.stdout
    code = ("import sys, torch; p = torch.export.load(sys.argv[1]).module(); "
            "a = p(torch.zeros(3, 4)); assert a.shape == (3,) and a.dtype == torch.int64; "
            "assert not any(m.split('.')[0] in ('torchrl_cli', 'gymnasium', 'hydra') "
            "for m in sys.modules); print('ok')")
    ran = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.pt2")],
                         capture_output=True, text=True, timeout=120)
    assert ran.stdout.strip() == "ok", ran.stderr
    again = run_cli(torchrl_bin, ["export", str(run), f"out={tmp_path / 'p.pt2'}"], tmp_path,
                    cli_env)
    assert_one_line_error(again, "already exists")


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_eval_prints_the_table_and_matches_training(runs, name, tmp_path, torchrl_bin, cli_env):
    """`torchrl eval <run>` replays the final evaluation: the same mean, in a table, whole even
    in an 80-column console (Pendulum's returns are long numbers)."""
    run = runs[name]
    metrics = json.loads((run / "metrics.json").read_text())
    proc = run_cli(torchrl_bin, ["eval", str(run)], tmp_path, {**cli_env, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert "6 deterministic episodes" in " ".join(proc.stdout.split())  # the header may wrap
    assert f"{metrics['mean_return']:.2f}" in proc.stdout
    returns = metrics["returns"]
    assert f"{min(returns):.2f}" in proc.stdout and f"{max(returns):.2f}" in proc.stdout
    for column in ("mean", "std", "min", "max", "length"):
        assert column in proc.stdout


def test_eval_video_writes_decodable_mp4s(runs, tmp_path, torchrl_bin, cli_env):
    """video=true: one MP4 per episode in a new folder of the run; each decodes to as many
    frames as the episode had steps (plus the first observation)."""
    run = runs["pendulum"]  # Pendulum: 200-step episodes, fast to render
    proc = run_cli(torchrl_bin, ["eval", str(run), "episodes=2", "video=true",
                                 "checkpoint=best"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 videos in" in proc.stdout
    videos = sorted((run / "videos").glob("*/*.mp4"))
    assert [v.name for v in videos] == ["episode_000.mp4", "episode_001.mp4"]
    for video in videos:
        assert video.stat().st_size > 1000
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
        assert frames in (200, 201)


def test_render_without_display_is_one_line(runs, tmp_path, torchrl_bin, cli_env):
    env = {k: v for k, v in cli_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = run_cli(torchrl_bin, ["eval", str(runs["cartpole"]), "render=true"], tmp_path, env)
    assert_one_line_error(proc, "render=true needs a display", "video=true")


def test_video_and_render_together_are_one_line(runs, tmp_path, torchrl_bin, cli_env):
    """Each sets the env's render mode (rgb_array for the recorder, human for the window)."""
    proc = run_cli(torchrl_bin, ["eval", str(runs["cartpole"]), "video=true", "render=true"],
                   tmp_path, {**cli_env, "DISPLAY": ":0"})
    assert_one_line_error(proc, "video=true", "render=true", "choose one")


@pytest.mark.parametrize(("args", "needles"), [
    (["eval", "{root}/nowhere"], ["does not exist"]),
    (["eval", "{root}"], ["is not a torchrl-cli run folder"]),
    (["eval", "{cartpole}", "episodes=many"], ["episodes=many must be an int"]),
    (["eval", "{cartpole}", "speed=2"], ["'speed=2' is not an option of torchrl eval"]),
    (["eval", "{cartpole}", "checkpoint={pendulum}/checkpoints/best.pt"],
     ["saved by a run on Pendulum-v1", "trains on CartPole-v1"]),
    (["eval", "{cartpole}", "checkpoint={large}/checkpoints/best.pt"],
     ["does not fit this run's network", "size mismatch"]),
    (["export", "{cartpole}", "checkpoint={root}/nothing.pt"], ["nothing.pt does not exist"]),
], ids=["missing", "not-a-run", "bad-int", "unknown-option", "other-env", "other-net",
        "missing-file"])
def test_bad_eval_and_export_input(runs, tmp_path, torchrl_bin, cli_env, args, needles):
    paths = {"root": runs["cartpole"].parent, **runs}
    before = snapshot(runs["cartpole"].parent)
    proc = run_cli(torchrl_bin, [a.format(**paths) for a in args], tmp_path, cli_env)
    assert_one_line_error(proc, *needles)
    assert snapshot(runs["cartpole"].parent) == before


def test_corrupted_checkpoint_is_refused_without_running_its_code(runs, tmp_path, torchrl_bin,
                                                                  cli_env):
    """A checkpoint carrying a pickled payload (torch.save'd or raw pickle) is refused
    (weights_only) with a line that says why and gives no advice to turn the protection off, and
    never runs; a file of garbage is reported as corrupted; no torch warning is printed."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil, raw, garbage = tmp_path / "evil.pt", tmp_path / "raw.pkl", tmp_path / "garbage.pt"
    torch.save({"format": 1, "agent": Payload()}, evil)
    raw.write_bytes(pickle.dumps({"agent": Payload()}, protocol=4))
    garbage.write_bytes(random.Random(0).randbytes(4096))
    for path in (evil, raw):
        proc = run_cli(torchrl_bin, ["eval", str(runs["cartpole"]), f"checkpoint={path}"],
                       tmp_path, cli_env)
        line = assert_one_line_error(
            proc, f"checkpoint {path} holds objects that are not plain tensors; refused, since "
            "loading it could run code")
        assert "weights_only" not in line and len(line) < 300
    proc = run_cli(torchrl_bin, ["eval", str(runs["cartpole"]), f"checkpoint={garbage}"],
                   tmp_path, cli_env)
    assert_one_line_error(proc, f"checkpoint {garbage} is truncated or corrupted")
    assert not marker.exists()


def test_a_flipped_bit_in_a_checkpoint_is_found(runs, tmp_path, torchrl_bin, cli_env):
    """Eight bytes flipped inside the tensor data (torch.load itself would not notice): eval
    refuses the file with one line naming the newest intact checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(runs["cartpole"], run)
    steps = step_checkpoints(run / "checkpoints")
    data = bytearray(steps[-1].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    steps[-1].write_bytes(bytes(data))
    proc = run_cli(torchrl_bin, ["eval", str(run)], tmp_path, cli_env)
    assert_one_line_error(proc, f"checkpoint {steps[-1]} is", f"intact checkpoint is {steps[-2]}")


def test_checkpoints_keep_the_last_k_and_the_best(runs):
    """keep_checkpoints=3 (default): three step files; best.pt holds the best evaluation."""
    run = runs["cartpole"]
    steps = step_checkpoints(run / "checkpoints")
    assert [p.name for p in steps] == [f"step_{n:09d}.pt" for n in (2048, 3072, 4096)]
    best = read_checkpoint(run / "checkpoints" / "best.pt")
    metrics = json.loads((run / "metrics.json").read_text())
    assert best["agent"]["best_return"] == max(e["mean_return"] for e in metrics["evaluations"])
    assert not list((run / "checkpoints").glob(".*.tmp"))
