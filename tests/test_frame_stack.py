"""env.frame_stack=K: the last K observations of each episode, over every vectorization."""

import importlib.util
import os

import gymnasium as gym
import numpy as np
import pytest
from conftest import ENVMODS, TINY, assert_one_line_error, compose_config, torchrl
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


def test_single_images_stack_along_channels_and_arrays_that_are_neither_are_refused():
    """A channels-first image stacks to [K * C, H, W] with its bounds and dtype; a 2-D array
    that is not an image is one line naming the ways out."""
    from torchrl_cli.config.validate import stacked
    from torchrl_cli.envs.spaces import state_info

    cfg = OmegaConf.create({"id": "img", "frame_stack": 2})
    image = state_info(gym.spaces.Box(0, 255, (40, 40, 3), np.uint8), "img")
    both = stacked(cfg, image)
    assert both.shape == (6, 40, 40) and both.dtype == "uint8" and both.image
    assert both.low.shape == (6, 40, 40) and both.high.max() == 255
    table = state_info(gym.spaces.Box(-1, 1, (3, 5), np.float32), "img")
    with pytest.raises(ConfigError, match="neither a vector nor an image.*memory=lstm"):
        stacked(cfg, table)


def test_dict_entries_stack_each_on_its_own_as_their_raw_stacks_encode():
    """A Dict of an image, a vector and a Discrete entry: each entry holds its own K (the image
    [K * C, H, W] for its CNN, the Discrete one K one-hots), bounds moved with their columns,
    and the columns FrameStack joins are what the encoder makes of K raw observations stacked
    per leaf (FrameStackObservation's form, which load_policy's env gives)."""
    import torch

    from torchrl_cli.config.validate import stacked
    from torchrl_cli.envs.encode import ObsEncoder
    from torchrl_cli.envs.frame_stack import entry_order
    from torchrl_cli.envs.spaces import EntryKind, state_info

    space = gym.spaces.Dict({"frame": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
                             "speed": gym.spaces.Box(-1, 1, (2,), np.float32),
                             "gear": gym.spaces.Discrete(3, start=1)})  # fmt: skip
    one = state_info(space, "d")
    k = 3
    info = stacked(OmegaConf.create({"id": "d", "frame_stack": k}), one)
    entries = {e.key: e for e in info.entries}
    assert info.shape == (k * one.shape[0],) and info.structured
    assert entries["frame"].kind == EntryKind.IMAGE and entries["frame"].enc_shape == (9, 8, 8)
    assert entries["speed"].enc_shape == (6,) and entries["gear"].enc_shape == (9,)
    # the entries by key (a Dict's order): the frames (3 x 192), gear's one-hots (3 x 3), the
    # speeds (3 x 2)
    order, d = entry_order(one, k), one.shape[0]
    assert np.array_equal(order[190:194], [190, 191, d, d + 1])
    assert np.array_equal(order[576:580], [192, 193, 194, d + 192])
    assert np.isinf(info.low[:585]).all()  # bounds of the vector entries only
    assert (info.low[-6:] == -1).all()
    space.seed(0)
    frames = [space.sample() for _ in range(k)]
    each = [ObsEncoder(one)({key: torch.as_tensor(np.asarray(v))[None] for key, v in o.items()})
            for o in frames]  # fmt: skip
    joined = torch.cat(each, -1)[0].numpy()[entry_order(one, k)]
    raw = {key: torch.as_tensor(np.stack([np.asarray(o[key]) for o in frames]))[None]
           for key in space.spaces}  # fmt: skip
    assert np.array_equal(ObsEncoder(info)(raw)[0].numpy(), joined)


def test_image_stacks_shift_by_whole_frames_and_restore_from_snapshots():
    """On 40x40 gray frames (LitSide: one-step episodes, so every step starts a new stack):
    the stack is the episode's first frame K times, a finished episode's final observation is
    its last K, and a snapshot restores the stacks."""
    env = build_env(compose_config(["env=torchrl_test_envs:LitSide", "env.pixels.resize=null",
                                    "env.pixels.frame_stack=1", "env.frame_stack=3"]).env, 2)
    try:
        assert isinstance(env, FrameStack) and env.get_state_info().shape == (3, 40, 40)
        obs = env.reset(seed=0)
        assert obs.shape == (2, 3, 40, 40) and obs.dtype == np.uint8
        assert all(np.array_equal(obs[:, 0], obs[:, j]) for j in (1, 2))
        state = env.get_state()
        step = env.step(np.array([0, 1]))
        assert np.array_equal(step.final_obs[:, :2], obs[:, 1:])  # its own last 3: a shift
        assert not np.array_equal(step.final_obs[:, 2], obs[:, 2])
        assert all(np.array_equal(step.obs[:, 0], step.obs[:, j]) for j in (1, 2))  # new ones
        env.set_state(state)
        assert np.array_equal(env.step(np.array([0, 1])).final_obs, step.final_obs)
    finally:
        env.close()


def test_image_stacks_train_and_evaluate_in_a_fresh_process_and_load(tmp_path, torchrl_bin,
                                                                     cli_env):
    """A CNN on 2 stacked 40x40 frames: the banner names the stack, torchrl eval runs, and
    load_policy's env gives the [2, 40, 40] frames its policy takes."""
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ENVMODS), cli_env.get("PYTHONPATH")) if p)}  # fmt: skip
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "env=torchrl_test_envs:LitSide", "env.pixels.resize=null",
                                 "env.pixels.frame_stack=1", "env.frame_stack=2", "max_steps=256",
                                 "agent.n_steps=32", "eval_episodes=2", "torch_threads=1",
                                 f"hydra.run.dir={run}"], tmp_path, env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x 2 stacked frames" in proc.stdout and "uint8 (2, 40, 40)" in proc.stdout
    evaluated = torchrl(torchrl_bin, ["eval", str(run), "episodes=2"], tmp_path, env)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    policy = load_policy(run)
    made = policy.make_env()
    obs, _ = made.reset(seed=0)
    assert obs.shape == (2, 40, 40) and obs.dtype == np.uint8 and np.array_equal(obs[0], obs[1])
    obs, *_ = made.step(int(policy(obs[None])[0]))
    assert obs.shape == (2, 40, 40)
    made.close()


def test_dict_stacks_train_evaluate_in_a_fresh_process_and_load(tmp_path, torchrl_bin,
                                                               cli_env):
    """XorDictEnv (a uint8 grid and a vector) with 2 stacked observations: it trains on the
    multi-input net, torchrl eval runs, and load_policy's env gives each entry's last 2, which
    its policy takes."""
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ENVMODS), cli_env.get("PYTHONPATH")) if p)}  # fmt: skip
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "env=torchrl_test_envs:XorDictEnv", "env.frame_stack=2",
                                 *TINY, f"hydra.run.dir={run}"], tmp_path, env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evaluated = torchrl(torchrl_bin, ["eval", str(run), "episodes=2"], tmp_path, env)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    policy = load_policy(run)
    made = policy.make_env()
    obs, _ = made.reset(seed=0)
    assert obs["grid"].shape == (2, 6, 6, 1) and obs["vec"].shape == (2, 2)
    assert np.array_equal(obs["grid"][0], obs["grid"][1])  # a new episode: its first, twice
    assert int(policy(obs)) in (0, 1)
    made.close()


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
