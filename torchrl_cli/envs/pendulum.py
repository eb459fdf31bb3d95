"""A native (whole-batch numpy) vector env for Pendulum-v1, which Gymnasium has none for.

The dynamics are those of Gymnasium's ``PendulumEnv``, written with the same operations in the
same order and dtypes, so that each copy steps bit for bit as ``gym.make("Pendulum-v1")`` does
(tests/test_native_env.py checks it).
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from torchrl_cli.errors import ConfigError

MAX_SPEED, MAX_TORQUE, DT, MASS, LENGTH = 8, 2.0, 0.05, 1.0, 1.0
RESET_HIGH = np.array([np.pi, 1.0])  # start states: uniform theta in [-pi, pi], thdot in [-1, 1]


class PendulumVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` pendulums stepped together; a copy restarts on the step after its time limit
    (Gymnasium's NEXT_STEP convention, as its CartPoleVectorEnv), unless ``reset_copies``
    restarts it first."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 200,
        render_mode: str | None = None,
        g: float = 10.0,
    ):
        if render_mode is not None:
            raise ConfigError(
                "env.vectorization='native' cannot render Pendulum-v1; use vectorization=sync"
            )
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.g = g
        self.theta = np.zeros(num_envs)
        self.theta_dot = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.prev_done = np.zeros(num_envs, dtype=np.bool_)
        self.copy_rngs: list[np.random.Generator] = []  # one per copy (see reset)
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = spaces.Box(-MAX_TORQUE, MAX_TORQUE, (1,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Restart every copy. ``seed``: one per copy (an int ``s`` means ``s, s + 1, ...``, as
        SyncVectorEnv takes them); each copy draws its start states from its own generator,
        the very stream a ``gym.make("Pendulum-v1")`` reset with that seed would use, so that a
        seeded run is the same run whether its Pendulums are native or sync."""
        if seed is not None or not self.copy_rngs:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else seed
            self.copy_rngs = [seeding.np_random(s)[0] for s in seeds or [None] * self.num_envs]
        return self.reset_copies(np.ones(self.num_envs, dtype=np.bool_)), {}

    def step(self, actions: np.ndarray):
        th, thdot = self.theta, self.theta_dot
        # clipped in the action's own dtype: float32 actions keep 3.0 * u and u**2 in float32
        u = np.clip(actions[:, 0], -MAX_TORQUE, MAX_TORQUE)
        # Gymnasium squares numpy scalars, which numpy does with libm's pow/powf: not always the
        # correctly rounded x * x that ** 2 on an array gives. float_power calls pow per element;
        # powf has no array form, so u's squares are taken one scalar at a time.
        u_squared = np.array([v**2 for v in u])
        costs = np.float_power(angle_normalize(th), 2) + 0.1 * np.float_power(thdot, 2)
        costs += 0.001 * u_squared
        acc = 3 * self.g / (2 * LENGTH) * np.sin(th) + 3.0 / (MASS * LENGTH**2) * u
        self.theta_dot = np.clip(thdot + acc * DT, -MAX_SPEED, MAX_SPEED)
        self.theta = th + self.theta_dot * DT
        self.steps += 1
        reward = -costs
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = self.steps >= self.max_episode_steps
        restart = self.prev_done
        if restart.any():  # NEXT_STEP autoreset: this step restarts them instead
            self._restart(restart)
            reward[restart] = 0.0
            truncated[restart] = False
        self.prev_done = truncated.copy()  # a copy: the caller owns the returned array
        return self._obs(), reward, terminated, truncated, {}

    def reset_copies(self, done: np.ndarray) -> np.ndarray:
        """Restart the ``done`` copies now; returns the observations of all copies."""
        self._restart(done)
        self.prev_done[:] = False  # nothing left for the next step's autoreset
        return self._obs()

    def _restart(self, done: np.ndarray) -> None:
        for i in np.flatnonzero(done):  # copy by copy, as Pendulum's reset draws
            self.theta[i], self.theta_dot[i] = self.copy_rngs[i].uniform(-RESET_HIGH, RESET_HIGH)
        self.steps[done] = 0

    def _obs(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 3), dtype=np.float32)
        obs[:, 0], obs[:, 1], obs[:, 2] = np.cos(self.theta), np.sin(self.theta), self.theta_dot
        return obs


def angle_normalize(x: np.ndarray) -> np.ndarray:
    """``x`` wrapped into [-pi, pi)."""
    return ((x + np.pi) % (2 * np.pi)) - np.pi
