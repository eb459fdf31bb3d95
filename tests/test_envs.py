"""The env layer: space descriptions, same-step autoreset, seeding, vectorization, wrappers."""

import numpy as np
import pytest
from conftest import compose_config

from torchrl_cli.envs import GymEnv
from torchrl_cli.envs.factory import build_env
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.errors import ConfigError


def test_space_info_discrete_and_box():
    """CartPole: Box(4,) states, Discrete(2) actions; Pendulum: Box(1,) actions in [-2, 2]."""
    cartpole = GymEnv("CartPole-v1", n_envs=2, vectorization="sync")
    assert cartpole.get_state_info().shape == (4,)
    assert cartpole.get_action_info() == SpaceInfo(SpaceKind.DISCRETE, (), n=2, dtype="int64")
    assert cartpole.simulator == "classic_control"
    pendulum = GymEnv("Pendulum-v1", n_envs=1, vectorization="sync")
    info = pendulum.get_action_info()
    assert info.kind == "continuous" and info.shape == (1,)
    assert info.low.tolist() == [-2.0] and info.high.tolist() == [2.0]
    cartpole.close()
    pendulum.close()


def test_truncation_reports_final_obs_and_resets_same_step():
    """A time-limit cut sets truncated, hands back the episode's last observation, and the
    returned observation already starts the next episode."""
    env = GymEnv("CartPole-v1", n_envs=2, vectorization="sync", max_episode_steps=3)
    env.reset(seed=0)
    steps = [env.step(np.zeros(2, dtype=np.int64)) for _ in range(3)]
    assert not steps[0].truncated.any() and steps[0].final_obs is None
    last = steps[-1]
    assert last.truncated.all() and not last.terminated.any()
    assert last.final_obs is not None
    assert not np.allclose(last.final_obs, last.obs)  # reset obs differs from the final one
    assert np.abs(last.obs).max() <= 0.05  # CartPole resets near 0
    env.close()


def test_same_seed_same_observations():
    """Copy i is seeded with seed + i: two envs with one seed agree, copies differ."""
    a, b = (GymEnv("CartPole-v1", n_envs=3, vectorization="sync") for _ in range(2))
    obs_a, obs_b = a.reset(seed=7), b.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.allclose(obs_a[0], obs_a[1])
    actions = np.array([0, 1, 1])
    np.testing.assert_array_equal(a.step(actions).obs, b.step(actions).obs)
    a.close()
    b.close()


def test_async_vectorization_steps_in_subprocesses():
    """env.vectorization=async runs the copies in subprocesses with the same results."""
    sync = build_env(compose_config(["env.vectorization=sync"]).env, n_envs=2)
    async_ = build_env(compose_config(["env.vectorization=async"]).env, n_envs=2)
    try:
        np.testing.assert_array_equal(sync.reset(seed=1), async_.reset(seed=1))
        actions = np.array([1, 0])
        np.testing.assert_allclose(sync.step(actions).obs, async_.step(actions).obs)
    finally:
        sync.close()
        async_.close()


def test_wrappers_from_config_are_applied():
    """env.wrappers: each _target_ node wraps every copy (here a 4-step time limit)."""
    cfg = compose_config(["env.wrappers=[{_target_:gymnasium.wrappers.TimeLimit,"
                          "max_episode_steps:4}]"])
    env = build_env(cfg.env, n_envs=1)
    env.reset(seed=0)
    truncated = [bool(env.step(np.array([0, 1][i % 2:i % 2 + 1])).truncated[0])
                 for i in range(4)]
    assert truncated == [False, False, False, True]
    env.close()


@pytest.mark.parametrize("vectorization", ["sync", "native"])
def test_train_max_episode_steps_cuts_training_episodes_only(vectorization):
    """env.train_max_episode_steps: training copies truncate (not terminate) after that many
    steps; the evaluation env keeps CartPole's own 500-step limit."""
    cfg = compose_config([f"env.vectorization={vectorization}", "env.train_max_episode_steps=4"])
    train, evaluation = build_env(cfg.env, n_envs=2), build_env(cfg.env, 2, evaluation=True)
    try:
        for env in (train, evaluation):
            env.reset(seed=0)
        balancing = np.array([0, 1])  # alternate pushes: CartPole stands well past 8 steps
        cut = [train.step(balancing[[i % 2] * 2]) for i in range(8)]
        assert [bool(s.truncated.all()) for s in cut] == [False, False, False, True] * 2
        assert not any(s.terminated.any() for s in cut)
        kept = [evaluation.step(balancing[[i % 2] * 2]) for i in range(8)]
        assert not any(s.truncated.any() or s.terminated.any() for s in kept)
    finally:
        train.close()
        evaluation.close()


def test_unknown_id_suggests_registered_ids():
    with pytest.raises(ConfigError, match="did you mean 'CartPole-v1'"):
        GymEnv("CartPole-v9", n_envs=1, vectorization="sync")
