"""Envs from anywhere, from the command line: a user's module (``env=<module>:<EnvId>``) trained,
evaluated, exported and resumed, then used from a fresh process; third-party ids with no flag
(minigrid); toy-text and pixel envs; and the one-line errors of each way it can go wrong."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT, TINY, assert_no_traceback, assert_one_line_error, torchrl

ENVMODS = Path(__file__).resolve().parent / "envmods"  # the user's own modules, on PYTHONPATH


@pytest.fixture(scope="module")
def user_env(cli_env) -> dict:
    """CLI environment with the test env modules importable, as a user's PYTHONPATH would."""
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ENVMODS), env.get("PYTHONPATH")) if p)
    return env


def train_ok(torchrl_bin, args, cwd, env) -> subprocess.CompletedProcess:
    proc = torchrl(torchrl_bin, ["train", *args], cwd, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    return proc


def test_module_env_trains_and_runs_again_in_fresh_processes(torchrl_bin, user_env, tmp_path):
    """env=torchrl_test_envs:Corridor-v0 trains; the run folder records it, so eval, export,
    resume and load_policy (with make_env) in new processes import the module themselves."""
    run = tmp_path / "run"
    proc = train_ok(torchrl_bin, ["env=torchrl_test_envs:Corridor-v0", *TINY,
                                  f"hydra.run.dir={run}"], tmp_path, user_env)
    assert "on torchrl_test_envs:Corridor-v0" in proc.stdout
    assert "backend auto: acting numpy, update numpy" in proc.stdout
    assert "torchrl_test_envs:Corridor-v0" in (run / "config.yaml").read_text()
    proc = torchrl(torchrl_bin, ["eval", str(run), "episodes=2"], tmp_path, user_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Corridor-v0" in proc.stdout and "mean" in proc.stdout
    proc = torchrl(torchrl_bin, ["export", str(run), f"out={tmp_path / 'p.pt2'}"], tmp_path,
                   user_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = torchrl(torchrl_bin, ["train", f"resume={run}", "max_steps=512"], tmp_path, user_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((run / "metrics.json").read_text())["env_steps"] == 512
    script = (
        "import numpy as np, torch, torchrl_cli\n"
        f"p = torchrl_cli.load_policy({str(run)!r})\n"
        "env = p.make_env()\n"
        "obs, _ = env.reset(seed=0)\n"
        "a = p(obs); env.step(a)\n"
        f"prog = torch.export.load({str(tmp_path / 'p.pt2')!r}).module()\n"
        "assert int(prog(torch.as_tensor(obs[None]))[0]) in (0, 1)\n"
        "print('ok', type(env.unwrapped).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=user_env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "ok Corridor" in proc.stdout


def test_an_unregistered_class_is_named_directly(torchrl_bin, user_env, tmp_path):
    """env=<module>:<Class> registers the class; a Dict observation picks the multi-input net."""
    proc = train_ok(torchrl_bin, ["env=torchrl_test_envs:XorDictEnv", *TINY], tmp_path,
                    user_env)
    assert "net auto: multi_input" in proc.stdout


def test_minigrid_trains_with_no_flags(torchrl_bin, cli_env, tmp_path):
    """MiniGrid ids need no import flag (the tool imports minigrid for them); the Text
    'mission' entry is dropped with one warning line; the 7x7 grid gets the grid CNN."""
    proc = train_ok(torchrl_bin, ["env=MiniGrid-Empty-5x5-v0", *TINY], tmp_path, cli_env)
    assert "net auto: multi_input" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "'mission'" in warnings[0], proc.stderr


@pytest.mark.parametrize(
    ("env_id", "extra", "net"),
    [
        ("FrozenLake-v1", [], "mlp"),
        ("Blackjack-v1", [], "mlp"),
        ("CarRacing-v3", ["+env.kwargs.max_episode_steps=20"], "nature_cnn"),
    ],
)
def test_toy_text_and_pixel_envs_train_from_the_command_line(torchrl_bin, cli_env, tmp_path,
                                                             env_id, extra, net):
    """Discrete and Tuple observations (one-hot) on an MLP; CarRacing's 96x96 RGB frames
    through the pixel preset (gray, 84x84, 4 frames) into the Nature CNN."""
    tiny = [o for o in TINY if not o.startswith("max_steps")] + ["max_steps=128"]
    proc = train_ok(torchrl_bin, [f"env={env_id}", *tiny, *extra], tmp_path, cli_env)
    assert f"net auto: {net}" in proc.stdout
    assert "final evaluation" in proc.stdout


def no_run_folder(cwd: Path) -> bool:
    return not (cwd / "runs").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["env=torchrl_broken_envs:Any-v0"],
         ["cannot import module 'torchrl_broken_envs'", "needs the frobnicator package"]),
        (["env=torchrl_no_such_module:Any-v0"], ["cannot import module 'torchrl_no_such_module'"]),
        (["env=torchrl_test_envs:Corridor-v9"],
         ["module 'torchrl_test_envs' registers no env 'Corridor-v9'", "'Corridor-v0'"]),
        (["env=torchrl_test_envs:SequenceEnv"], ["'inner.items'", "Sequence"]),
        (["env=MiniWorld-Hallway-v0"], ["miniworld", "pip install miniworld"]),
        (["env=MiniGrid-Empty-5x5-v0", "net=nature_cnn",
          "env.wrappers=[{_target_:minigrid.wrappers.ImgObsWrapper}]"],
         ["net nature_cnn takes images of at least 36x36", "7x7"]),
        (["env=MiniGrid-Empty-5x5-v9"], ["minigrid registers no such id", "MiniGrid-Empty-5x5-v0"]),
    ],
    ids=["import-fails", "no-module", "unknown-id", "sequence", "not-installed", "too-small",
         "known-package-unknown-id"],
)
def test_bad_env_input_is_one_line(torchrl_bin, user_env, tmp_path, args, needles):
    proc = torchrl(torchrl_bin, ["train", *args, *TINY], tmp_path, user_env)
    assert_one_line_error(proc, *needles)
    assert no_run_folder(tmp_path)


def test_an_entry_point_that_is_a_callable_is_named_in_the_banner():
    """An env registered with a ``functools.partial`` (or a class) as its entry point: the
    banner names the function (the class), not ``functools.partial(<function … at 0x…>)``."""
    import functools

    import gymnasium as gym
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import readable, train
    from torchrl_cli.tracking.console import make_console

    def make_pole(length: float) -> gym.Env:
        env = CartPoleEnv()
        env.length = length
        return env

    gym.register("PartialPole-v0", entry_point=functools.partial(make_pole, length=0.8),
                 max_episode_steps=50)
    try:
        console = make_console(record=True, width=80, force_terminal=False)
        train(compose_config(["env=PartialPole-v0", *TINY, "logger.console=quiet"]),
              console=console)
        banner = console.export_text().splitlines()[0]  # one line: soft-wrapped off a terminal
    finally:
        del gym.registry["PartialPole-v0"]
    assert "(make_pole, 2 envs" in banner, banner
    assert "functools" not in banner and "0x" not in banner
    assert readable("<class 'custom_env.CorridorEnv'>") == "custom_env.CorridorEnv"
    assert readable("classic_control") == "classic_control"
