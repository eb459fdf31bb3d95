"""Custom envs for the tests, as a user's own module would hold them: ``Corridor-v0`` is
registered on import (``env=torchrl_test_envs:Corridor-v0``); ``XorDictEnv`` and the others are
classes named directly (``env=torchrl_test_envs:XorDictEnv``)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right along a corridor of ``length`` cells: +1 at the end, -0.01 a step."""

    def __init__(self, length: int = 5):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.pos = 0

    def _obs(self):
        return np.array([self.pos / self.length, 1.0], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if int(action) == 1 else -1))
        done = self.pos >= self.length
        return self._obs(), 1.0 if done else -0.01, done, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)


class XorDictEnv(gym.Env):
    """One-step episodes that only a policy reading both entries solves: a 6x6 grid (channels
    last, uint8) marks the left or the right half (bit a), a vector holds +-1 (bit b), and the
    rewarded action is a XOR b. Reading one entry alone earns 0.5 on average; both, 1."""

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "grid": spaces.Box(0, 255, (6, 6, 1), np.uint8),
                "vec": spaces.Box(-1.0, 1.0, (2,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(2)
        self.bits = (0, 0)

    def _obs(self):
        a, b = self.bits
        grid = np.zeros((6, 6, 1), np.uint8)
        row = self.np_random.integers(6)
        grid[row, 3 * a : 3 * a + 3, 0] = 10
        vec = np.array([1.0 if b else -1.0, self.np_random.uniform(-1, 1)], np.float32)
        return {"grid": grid, "vec": vec}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bits = tuple(int(x) for x in self.np_random.integers(2, size=2))
        return self._obs(), {}

    def step(self, action):
        a, b = self.bits
        reward = 1.0 if int(action) == (a ^ b) else 0.0
        return self._obs(), reward, True, False, {}


class TextDictEnv(XorDictEnv):
    """XorDictEnv with a Text entry, which the encoder drops."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict(
            {**self.observation_space.spaces, "note": spaces.Text(8)}
        )

    def _obs(self):
        return {**super()._obs(), "note": "hi"}


class SequenceEnv(XorDictEnv):
    """A Sequence entry nested in a Dict: no fixed size, refused."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict(
            {"inner": spaces.Dict({"items": spaces.Sequence(spaces.Discrete(3))})}
        )


class MaskedChoice(gym.Env):
    """Action masks, as PettingZoo gives them (a Dict observation's ``action_mask`` entry):
    ``legal`` of ``n`` actions are legal at each step, drawn anew; the lowest legal one earns
    +1, another legal one 0, and an illegal one -1 and ends the episode (``strict``: raises,
    so a run that ever plays one fails). Episodes last ``length`` steps: the best return is
    ``length``; the observation says nothing about the legal actions, so a policy that cannot
    see the mask plays illegal actions and loses."""

    def __init__(self, n: int = 8, legal: int = 3, length: int = 8, strict: bool = False):
        self.n, self.legal, self.length, self.strict = n, legal, length, strict
        self.action_space = spaces.Discrete(n)
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(0.0, 1.0, (2,), np.float32),
                "action_mask": spaces.MultiBinary(n),
            }
        )
        self.t, self.mask = 0, np.ones(n, np.int8)

    def _draw(self):
        self.mask = np.zeros(self.n, np.int8)
        self.mask[self.np_random.choice(self.n, self.legal, replace=False)] = 1

    def _obs(self):
        obs = np.array([self.t / self.length, 1.0], np.float32)
        return {"observation": obs, "action_mask": self.mask.copy()}

    def _info(self):
        return {}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self._draw()
        return self._obs(), self._info()

    def step(self, action):
        action = int(action)
        if not self.mask[action]:
            if self.strict:
                raise ValueError(f"illegal action {action} (legal: {np.flatnonzero(self.mask)})")
            return self._obs(), -1.0, True, False, self._info()
        reward = 1.0 if action == int(np.flatnonzero(self.mask)[0]) else 0.0
        self.t += 1
        self._draw()
        return self._obs(), reward, self.t >= self.length, False, self._info()


class InfoMaskedChoice(MaskedChoice):
    """MaskedChoice with the legal actions in ``info["action_mask"]`` (sb3-contrib's and
    Gymnasium's toy-text convention) and a plain Box observation."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.observation_space = self.observation_space["observation"]

    def _obs(self):
        return super()._obs()["observation"]

    def _info(self):
        return {"action_mask": self.mask.copy()}


class LitSide(gym.Env):
    """One-step episodes on 40x40 gray frames (uint8, channels last): the left or the right
    half is lit, with noise; action 0 or 1 names the lit half for +1 (else 0). Large enough for
    the Nature CNN (36x36), small enough for fast tests of the image path."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (40, 40, 1), np.uint8)
        self.action_space = spaces.Discrete(2)
        self.side = 0

    def _obs(self):
        frame = self.np_random.integers(0, 60, (40, 40, 1), dtype=np.uint8)
        frame[:, 20 * self.side : 20 * self.side + 20] += 120
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.side = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        reward = 1.0 if int(action) == self.side else 0.0
        self.side = int(self.np_random.integers(2))
        return self._obs(), reward, True, False, {}
