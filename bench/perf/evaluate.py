"""The protocol's evaluation for Stable-Baselines3: 20 deterministic episodes, one per copy of a
separate vector env with fixed seeds (torchrl-cli runs the same protocol in BaseAgent.evaluate)."""

from collections.abc import Callable

import gymnasium as gym
import numpy as np


class Evaluator:
    def __init__(self, env_id: str, episodes: int, seed: int):
        self.env = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
        self.seeds = [seed + i for i in range(episodes)]

    def __call__(self, act: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean return of the first episode of every copy under the policy ``act``."""
        obs, _ = self.env.reset(seed=self.seeds)
        returns = np.zeros(self.env.num_envs)
        active = np.ones(self.env.num_envs, dtype=bool)
        while active.any():
            obs, reward, terminated, truncated, _ = self.env.step(act(obs))
            returns += reward * active
            active &= ~(terminated | truncated)
        return float(returns.mean())

    def close(self) -> None:
        self.env.close()
