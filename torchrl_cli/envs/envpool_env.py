"""EnvPool (Weng et al. 2022, https://github.com/sail-sg/envpool) as GymEnv's vector env for
``env.vectorization=envpool``: copies stepped by C++ threads in sync mode, adapted as native
vector envs are (``envs.native``).

EnvPool resets a finished copy on the *next* step (NEXT_STEP), which would put a dead transition
into every rollout. ``reset_copies`` resets the finished copies within the step that ended them
through EnvPool's partial reset (``reset(env_ids)``, which sync mode supports), so that GymEnv
returns their last observation in ``final_obs`` and the first of their next episode in ``obs``.
One difference from Gymnasium remains: a copy that terminates on the very step its time limit
ends is reported truncated only (EnvPool's terminated is ``done & ~truncated``; Gymnasium's
TimeLimit reports both), so it bootstraps from a terminal state; rare, and left as EnvPool has it.

EnvPool fixes the seeds when a pool is made (``reset(seed=...)`` only warns), so a seeded reset
makes a new pool with one seed per copy (about 1 ms for 64 CartPoles, 75 ms for 64
HalfCheetahs). Its state lives in C++, out of reach: runs on it are not restorable.
"""

import warnings
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np

from torchrl_cli.errors import ConfigError, did_you_mean

ENVPOOL_HINT = "pip install 'torchrl-cli[envpool]'"
INT32_SEEDS = 2**31  # EnvPool takes seeds in int32 range
# EnvPool config keys that set up the pool (or describe the task), not env options
_POOL_KEYS = {
    "num_envs", "batch_size", "num_threads", "max_num_players", "thread_affinity_offset",
    "base_path", "seed", "env_seed", "gym_reset_return_info", "reward_threshold",
}  # fmt: skip


class EnvPoolVectorEnv:
    """``n_envs`` copies of ``env_id`` in one EnvPool (sync mode), with Gymnasium's spaces.

    Parameters:
        env_id: a Gymnasium id that EnvPool also has.
        n_envs: number of copies.
        wrappers: must be empty (EnvPool's copies live in C++).
        kwargs: env options, each one that EnvPool's config for the id also takes (e.g.
            ``max_episode_steps``, MuJoCo's ``ctrl_cost_weight``).
    """

    def __init__(self, env_id: str, n_envs: int, wrappers: Sequence, kwargs: Mapping):
        check_supported(env_id, wrappers, kwargs)
        self.envpool = import_envpool()
        self.env_id, self.num_envs, self.kwargs = env_id, n_envs, dict(kwargs)
        # spaces from Gymnasium, which torchrl-cli checks and builds from everywhere (EnvPool's
        # own can differ in bounds: LunarLander-v3's observation low is +1e-38)
        single = gym.make(env_id, **kwargs)
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        single.close()
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n_envs)
        pool_obs = self.envpool.make_spec(env_id, **kwargs).state_array_spec.get("obs")
        ours = self.single_observation_space
        same = pool_obs is not None and tuple(pool_obs.shape) == ours.shape
        if not same or np.dtype(pool_obs.dtype) != ours.dtype:
            raise ConfigError(
                f"env.vectorization=envpool: EnvPool's '{env_id}' observes {pool_obs} where "
                f"Gymnasium's observes {ours}; use sync or async"
            )
        self.pool = self._make(seed=None)
        self._obs: np.ndarray | None = None  # the last step's observations

    @property
    def unwrapped(self) -> "EnvPoolVectorEnv":
        return self

    def _make(self, seed: list[int] | None):
        seeds = {} if seed is None else {"seed": [s % INT32_SEEDS for s in seed]}
        return self.envpool.make(
            self.env_id, env_type="gymnasium", num_envs=self.num_envs, **seeds, **self.kwargs
        )

    def reset(self, *, seed: list[int] | None = None) -> tuple[np.ndarray, dict]:
        """Reset every copy; ``seed`` (one per copy) makes a new pool seeded with them."""
        if seed is not None:
            self.pool.close()
            self.pool = self._make(seed)
        with warnings.catch_warnings():  # a new pool makes its Box from float64 bounds, noisily
            warnings.filterwarnings("ignore", message=".*precision lowered by casting")
            return self.pool.reset()

    def step(self, actions: np.ndarray) -> tuple:
        """One step of every copy (EnvPool casts actions to its dtypes: int32, float64 for
        MuJoCo); finished copies restart only once ``reset_copies`` is called."""
        out = self.pool.step(actions)
        self._obs = out[0]
        return out

    def reset_copies(self, done: np.ndarray) -> np.ndarray:
        """Reset the ``done`` copies now; returns the observations of every copy (new ones for
        those), leaving the last step's observations (the final ones) untouched."""
        obs, info = self.pool.reset(np.flatnonzero(done))
        new_obs = self._obs.copy()
        new_obs[info["env_id"]] = obs
        return new_obs

    def close(self) -> None:
        self.pool.close()


def import_envpool():
    try:
        import envpool
    except ImportError:
        raise ConfigError(
            f"env.vectorization=envpool needs EnvPool, which is not installed; {ENVPOOL_HINT}"
        ) from None
    return envpool


def check_supported(env_id: str, wrappers: Sequence, kwargs: Mapping) -> None:
    """Refuse, in one line each, what EnvPool cannot serve: wrappers, ids it does not have,
    kwargs its config for the id does not take (and EnvPool missing)."""
    if wrappers:
        raise ConfigError("env.vectorization=envpool takes no env.wrappers; use sync or async")
    envpool = import_envpool()
    ids = envpool.list_all_envs()
    if env_id not in ids:
        raise ConfigError(
            f"env.vectorization=envpool: EnvPool has no '{env_id}'"
            f"{did_you_mean(env_id, [i for i in ids if i in gym.registry])}; use sync or async"
        )
    options = [k for k in envpool.make_spec(env_id).config._fields if k not in _POOL_KEYS]
    unknown = sorted(k for k in kwargs if k not in options)
    if unknown:
        raise ConfigError(
            f"env.vectorization=envpool: EnvPool's '{env_id}' takes no env.kwargs "
            f"{', '.join(unknown)} (it takes {', '.join(options) or 'none'}); use sync or async"
        )
