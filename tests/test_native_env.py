"""Gymnasium's native CartPole vector env behind GymEnv: same-step autoreset, the auto choice,
seeding and the refusals."""

import numpy as np
import pytest

from torchrl_cli.envs import GymEnv
from torchrl_cli.errors import ConfigError

THETA_LIMIT, X_LIMIT = 12 * 2 * np.pi / 360, 2.4


def balance(obs: np.ndarray) -> np.ndarray:
    """A hand-made controller that holds the pole for the whole 500 steps."""
    return ((obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1]) > 0).astype(np.int64)


def test_auto_picks_native_from_eight_copies_without_wrappers():
    assert GymEnv("CartPole-v1", n_envs=8, vectorization="auto").vectorization == "native"
    assert GymEnv("CartPole-v1", n_envs=4, vectorization="auto").vectorization == "sync"
    assert GymEnv("Pendulum-v1", n_envs=16, vectorization="auto").vectorization == "sync"
    wrapped = GymEnv("CartPole-v1", n_envs=8, vectorization="auto", wrappers=[lambda e: e])
    assert wrapped.vectorization == "sync"


def test_native_is_refused_where_it_cannot_serve():
    with pytest.raises(ConfigError, match="no native vector env"):
        GymEnv("Pendulum-v1", n_envs=2, vectorization="native")
    with pytest.raises(ConfigError, match="takes no env.wrappers"):
        GymEnv("CartPole-v1", n_envs=2, vectorization="native", wrappers=[lambda e: e])


def test_terminated_copies_reset_in_the_same_step():
    """A copy that falls returns its terminal observation in final_obs and a fresh start state
    (every component within +-0.05) in obs, in that same step; the others are untouched."""
    env = GymEnv("CartPole-v1", n_envs=16, vectorization="native")
    env.reset(seed=0)
    ends = 0
    for _ in range(200):
        step = env.step(np.zeros(16, dtype=np.int64))  # always push left: falls within ~10 steps
        done = step.terminated | step.truncated
        if not done.any():
            assert step.final_obs is None
            continue
        ends += done.sum()
        final = step.final_obs[step.terminated]
        assert np.all((np.abs(final[:, 0]) > X_LIMIT) | (np.abs(final[:, 2]) > THETA_LIMIT))
        assert np.all(np.abs(step.obs[done]) <= 0.05)
        np.testing.assert_array_equal(step.final_obs[~done], step.obs[~done])
    assert ends > 100


def test_time_limit_truncates_at_500_and_restarts_the_copy():
    env = GymEnv("CartPole-v1", n_envs=8, vectorization="native")
    obs, lengths, ended = env.reset(seed=1), np.zeros(8, dtype=int), []
    for _ in range(1100):
        step = env.step(balance(obs))
        lengths += 1
        assert not step.terminated.any()
        for i in np.flatnonzero(step.truncated):
            ended.append(lengths[i])
            lengths[i] = 0
            assert np.all(np.abs(step.obs[i]) <= 0.05)
        obs = step.obs
    assert ended == [500] * 16


def test_native_reset_is_seeded():
    a, b = (GymEnv("CartPole-v1", n_envs=8, vectorization="native") for _ in range(2))
    np.testing.assert_array_equal(a.reset(seed=3), b.reset(seed=3))
    actions = np.ones(8, dtype=np.int64)
    for _ in range(50):
        np.testing.assert_array_equal(a.step(actions).obs, b.step(actions).obs)
    assert not np.array_equal(a.reset(seed=3), a.reset(seed=4))
