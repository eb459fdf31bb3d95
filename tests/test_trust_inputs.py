"""Trust, round two (issue 27, item 10, the rest): a broken YAML file in a user's config folder
is one line naming it; a sweep over ``module:EnvId`` ids composes; observations of 1e38 (finite,
but beyond what float32 can square) stop the run with one line instead of training on."""

import os
from pathlib import Path

import pytest
from conftest import TINY, assert_one_line_error, compose_config, torchrl

from torchrl_cli.agents.guard import NonFiniteError
from torchrl_cli.config.store import env_choices
from torchrl_cli.run.train import train

TESTS = Path(__file__).resolve().parent


def with_tests(cli_env: dict) -> dict:
    path = os.pathsep.join(p for p in (cli_env.get("PYTHONPATH"), str(TESTS)) if p)
    return {**cli_env, "PYTHONPATH": path}


def test_a_broken_yaml_file_in_the_config_folder_is_named(torchrl_bin, cli_env, tmp_path):
    """Before: ``torchrl: error: while parsing a flow sequence``, naming no file."""
    (tmp_path / "conf" / "env").mkdir(parents=True)
    broken = tmp_path / "conf" / "env" / "mine.yaml"
    broken.write_text("id: CartPole-v1\nn_envs: [2\n")
    proc = torchrl(torchrl_bin, ["train", "--config-dir", "conf", "env=mine", *TINY],
                   tmp_path, cli_env)
    assert_one_line_error(proc, f"config file {broken} is not valid YAML (expected ',' or ']'",
                          "line 3, column 1", "correct the file, or move it out of the config "
                          "folder")
    assert not (tmp_path / "runs").exists()


def test_sweep_values_of_module_env_ids_are_unescaped():
    """Hydra hands each job its sweep value escaped (``module\\:EnvId``)."""
    assert env_choices([r"env=a.b\:C-v0", "env=d:E-v0,f\\:G-v0"]) == ["a.b:C-v0", "d:E-v0",
                                                                      "f:G-v0"]


def test_a_sweep_over_module_env_ids_runs(torchrl_bin, cli_env, tmp_path):
    """Before: ``env 'test_trust_envs:Endless' could not be composed``."""
    proc = torchrl(torchrl_bin, ["train", "-m", "env=test_trust_envs:Endless,test_trust_envs:"
                                 "Endless2", "max_steps=64", "agent.n_steps=32", "env.n_envs=2",
                                 "eval_episodes=1", "eval_max_episode_steps=10",
                                 "logger.progress=false", "hydra.sweep.dir=sweep"],
                   tmp_path, with_tests(cli_env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert jobs == ["0_ppo_clip_test_trust_envs:Endless", "1_ppo_clip_test_trust_envs:Endless2"]
    assert all((tmp_path / "sweep" / job / "metrics.json").is_file() for job in jobs)
    # the summary names each value as typed, without Hydra's escape
    summary = (tmp_path / "sweep" / "summary.csv").read_text()
    assert "env=test_trust_envs:Endless2" in summary and "\\:" not in summary


def test_observations_of_1e38_stop_the_run_with_one_line(tmp_path):
    """Before: the run trained on, its policy blind to observations float32 cannot square."""
    cfg = compose_config([*TINY, "env=test_trust_envs:Huge", "env.train_max_episode_steps=50"])
    with pytest.raises(NonFiniteError) as err:
        train(cfg, run_dir=tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message and "at env step 64, iteration 1;" in message
    assert "observations (finite, but up to 1e+38 in magnitude: beyond 1e+18" in message
    assert "env.running_normalize_states=true scales them, in float64" in message


def test_observations_of_1e38_train_when_normalized(tmp_path):
    """The fix the line gives: the running normalization's float64 statistics."""
    cfg = compose_config([*TINY, "env=test_trust_envs:Huge", "env.train_max_episode_steps=50",
                          "env.running_normalize_states=true", "eval_max_episode_steps=20"])
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert metrics["env_steps"] == 256 and metrics["mean_return"] is not None
