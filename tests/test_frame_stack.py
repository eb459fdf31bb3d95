"""env.frame_stack=K: the last K observations of each episode, over every vectorization."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY, assert_one_line_error, compose_config, torchrl
from omegaconf import OmegaConf

from torchrl_cli.config.validate import validate
from torchrl_cli.envs.factory import build_env
from torchrl_cli.envs.frame_stack import FrameStack
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.policy import load_policy

VECTORIZATIONS = [
    ("sync", "CartPoleNoVel-v1"),
    ("async", "CartPoleNoVel-v1"),
    ("native", "CartPole-v1"),
    pytest.param(
        "envpool",
        "CartPole-v1",
        marks=pytest.mark.skipif(importlib.util.find_spec("envpool") is None,
                                 reason="envpool not installed"),
    ),
]


def env_cfg(env_id: str, vectorization: str, k: int):
    cfg = compose_config([f"env={env_id}", f"env.vectorization={vectorization}",
                          f"env.frame_stack={k}"])
    return cfg.env


@pytest.mark.parametrize(("vectorization", "env_id"), VECTORIZATIONS)
def test_stacks_shift_and_start_over_at_each_episode(vectorization, env_id):
    """Each step drops the oldest observation and appends the newest; a new episode's stack
    is its first observation K times; a finished episode's final_obs is its own last K."""
    k, d, n = 3, 4, 8
    env = build_env(env_cfg(env_id, vectorization, k), n)
    try:
        assert isinstance(env, FrameStack) and env.vectorization == vectorization
        assert env.get_state_info().shape == (k * d,)
        obs = env.reset(seed=0)
        assert obs.shape == (n, k * d)
        assert all(np.array_equal(obs[:, :d], obs[:, j * d:(j + 1) * d]) for j in range(k))
        rng, ends = np.random.default_rng(0), 0
        for _ in range(60):
            step = env.step(rng.integers(0, 2, n))
            done = step.terminated | step.truncated
            ends += int(done.sum())
            assert np.array_equal(step.obs[~done, :-d], obs[~done, d:])
            if done.any():
                assert np.array_equal(step.final_obs[done, :-d], obs[done, d:])
                fresh = step.obs[done]
                assert all(np.array_equal(fresh[:, :d], fresh[:, j * d:(j + 1) * d])
                           for j in range(k))
            obs = step.obs
        assert ends > 0  # random CartPole episodes end within 60 steps
    finally:
        env.close()


def test_snapshots_hold_the_stacks():
    """get_state/set_state restore the stacks with the copies: the same next observations."""
    env = build_env(env_cfg("CartPoleNoVel-v1", "sync", 2), 2)
    try:
        env.reset(seed=1)
        for _ in range(3):
            env.step(np.array([0, 1]))
        state = env.get_state()
        first = env.step(np.array([1, 1])).obs
        env.step(np.array([0, 0]))
        env.set_state(state)
        assert np.array_equal(env.step(np.array([1, 1])).obs, first)
    finally:
        env.close()


def test_validation_sees_the_stacked_observations_and_refuses_bad_values():
    state, _ = validate(compose_config(["env=CartPoleNoVel-v1", "env.frame_stack=4"]))
    assert state.shape == (16,)
    with pytest.raises(ConfigError, match="env.frame_stack=0 must be at least 1"):
        validate(compose_config(["env=CartPoleNoVel-v1", "env.frame_stack=0"]))


def test_images_are_refused_in_one_line():
    """Images stack along their channels (env.pixels.frame_stack), not here."""
    from torchrl_cli.config.validate import stacked
    from torchrl_cli.envs.spaces import state_info

    image = state_info(gym.spaces.Box(0, 255, (40, 40, 3), np.uint8), "img")
    cfg = OmegaConf.create({"id": "img", "frame_stack": 2})
    with pytest.raises(ConfigError, match="env.pixels.frame_stack"):
        stacked(cfg, image)


def test_frame_stack_trains_evaluates_and_loads(tmp_path, torchrl_bin, cli_env):
    """A short run with stacked frames; torchrl eval in a new process; load_policy's env
    gives the stacked observations the policy takes."""
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "env=CartPoleNoVel-v1", "env.frame_stack=3", *TINY,
                                 f"hydra.run.dir={run}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x 3 stacked frames" in proc.stdout
    evaluated = torchrl(torchrl_bin, ["eval", str(run), "episodes=2"], tmp_path, cli_env)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    policy = load_policy(run)
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (12,) and np.array_equal(obs[:4], obs[8:])
    obs, *_ = env.step(int(policy(obs[None])[0]))
    assert obs.shape == (12,)
    env.close()
    bad = torchrl(torchrl_bin, ["train", "env=CartPoleNoVel-v1", "env.frame_stack=0", *TINY,
                                f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path, cli_env)
    assert_one_line_error(bad, "env.frame_stack=0")
    assert not (tmp_path / "bad").exists()
