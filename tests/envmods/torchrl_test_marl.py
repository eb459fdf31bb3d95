"""PettingZoo envs for the many-agents tests, as a user's module would hold them
(``env=pettingzoo:torchrl_test_marl``): two agents whose spaces differ, one of whom leaves
early. ``torchrl_test_marl_aec`` holds the same game behind the AEC API only."""

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

LIMIT = 4  # steps before the copy's episode is cut (truncation)
LEAVES_AT = 2  # the runner's last step (a termination)


class Pair(ParallelEnv):
    """``walker`` (obs 2, actions 3) is cut after ``LIMIT`` steps; ``runner`` (obs 3, actions 2)
    terminates after ``LEAVES_AT`` steps. Each step rewards each agent its action index, and
    the observations count the steps, so that a test can read them back."""

    metadata = {"name": "pair_v0"}

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.possible_agents = ["walker", "runner"]
        self.render_mode = None
        self.agents = []
        self.t = 0
        self.state_space = spaces.Box(-10, 10, (1,), np.float32)

    def observation_space(self, agent):
        return spaces.Box(-10, 10, (2 if agent == "walker" else 3,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(3 if agent == "walker" else 2)

    def _obs(self):
        return {
            a: np.full(self.observation_space(a).shape, self.t + (0 if a == "walker" else 100),
                       np.float32)
            for a in self.agents
        }

    def state(self):
        return np.array([self.t], np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        rewards = {a: float(actions[a]) for a in self.agents}
        term = {a: a == "runner" and self.t >= LEAVES_AT for a in self.agents}
        trunc = {a: self.t >= self.limit for a in self.agents}
        obs = self._obs()
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, {a: {} for a in rewards}


def parallel_env(**kwargs):
    return Pair(**kwargs)
