"""Envs for the trust tests (issue 27), importable by ``torchrl`` subprocesses as
``test_trust_envs:<Class>`` (tests/ on PYTHONPATH). None has a time limit."""

import gymnasium as gym
import numpy as np


class Endless(gym.Env):
    """Never ends an episode, whatever the actions (FlappyBird once its policy is good)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


def test_endless_never_ends():
    env = Endless()
    env.reset(seed=0)
    assert not any(env.step(0)[2] for _ in range(100))


class Asserting(Endless):
    """An env whose constructor fails with a bare ``assert`` (an exception with no message)."""

    def __init__(self):
        assert False  # noqa: B011, PT015  the point: an AssertionError with no message


class Huge(Endless):
    """Observations of 1e38: finite, and near float32's largest (3.4e38)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, 1e38, np.float32), {}

    def step(self, action):
        return np.full(2, 1e38, np.float32), 1.0, False, False, {}


class Endless2(Endless):
    """A second id for a sweep over ``module:EnvId`` values."""
