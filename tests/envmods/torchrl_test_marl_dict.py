"""``torchrl_test_marl``'s game with structured observations
(``env=pettingzoo:torchrl_test_marl_dict``): the walker sees a Dict of a Discrete phase and a
Box position, the runner a Tuple of a Box and a MultiBinary; ``observation_space="text"``
gives the walker a Text entry, which does not flatten to numbers."""

import numpy as np
from gymnasium import spaces
from torchrl_test_marl import Pair


class StructuredPair(Pair):
    """``walker``: ``{"phase": t % 3, "pos": [t, -t]}``; ``runner``: ``([100 + t], [1, 0])``."""

    metadata = {"name": "structured_pair_v0"}

    def __init__(self, observation_space: str = "dict", **kwargs):
        super().__init__(**kwargs)
        self.text = observation_space == "text"

    def observation_space(self, agent):
        if agent == "walker":
            last = spaces.Text(4) if self.text else spaces.Box(-10, 10, (2,), np.float32)
            return spaces.Dict({"phase": spaces.Discrete(3), "pos": last})
        return spaces.Tuple((spaces.Box(0, 200, (1,), np.float32), spaces.MultiBinary(2)))

    def _obs(self):
        obs = {}
        if "walker" in self.agents:
            obs["walker"] = {"phase": self.t % 3,
                             "pos": np.array([self.t, -self.t], np.float32)}  # fmt: skip
        if "runner" in self.agents:
            obs["runner"] = (np.array([100 + self.t], np.float32), np.array([1, 0], np.int8))
        return obs


def parallel_env(**kwargs):
    return StructuredPair(**kwargs)
