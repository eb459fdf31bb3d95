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

ALE games (``ALE/Pong-v5`` is EnvPool's ``Pong-v5``) get ``env.atari``'s preprocessing from
EnvPool's own C++ (``atari_options``: the same no-op reset, frame skip with max-pooling, 84x84
grayscale by area interpolation, FIRE after reset, frame stack, and for training episodic life
and clipped rewards), and Gymnasium's v5 sticky actions.

EnvPool fixes the seeds when a pool is made (``reset(seed=...)`` only warns), so a seeded reset
makes a new pool with one seed per copy (about 1 ms for 64 CartPoles, 75 ms for 64
HalfCheetahs). Its state lives in C++, out of reach: runs on it are not restorable.
"""

import warnings
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np

from torchrl_cli.envs.atari import is_atari
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
            ``max_episode_steps``, MuJoCo's ``ctrl_cost_weight``; an ALE game's preprocessing,
            ``atari_options``).
    """

    def __init__(self, env_id: str, n_envs: int, wrappers: Sequence, kwargs: Mapping):
        check_supported(env_id, wrappers, kwargs)
        self.envpool = import_envpool()
        self.env_id, self.num_envs, self.kwargs = envpool_id(env_id), n_envs, dict(kwargs)
        # EnvPool's own episodic life holds on its next-step autoreset only: the same-step reset
        # below (reset(env_ids)) restarts the game. So a lost life ends the learner's episode
        # here, as envs.atari.EpisodicLife does, and the copy plays on.
        self.episodic_life = bool(self.kwargs.pop("episodic_life", False))
        self._lives = np.zeros(n_envs, dtype=np.int64)
        self._lost_life = np.zeros(n_envs, dtype=bool)
        spec = self.envpool.make_spec(self.env_id, **self.kwargs)
        if is_atari(env_id):  # preprocessed frames: EnvPool's spaces are the ones it serves
            self.single_observation_space = spec.observation_space
            self.single_action_space = spec.action_space
        else:
            # spaces from Gymnasium, which torchrl-cli checks and builds from everywhere
            # (EnvPool's own can differ in bounds: LunarLander-v3's observation low is +1e-38)
            single = gym.make(env_id, **kwargs)
            self.single_observation_space = single.observation_space
            self.single_action_space = single.action_space
            single.close()
            pool_obs = spec.state_array_spec.get("obs")
            ours = self.single_observation_space
            same = pool_obs is not None and tuple(pool_obs.shape) == ours.shape
            if not same or np.dtype(pool_obs.dtype) != ours.dtype:
                raise ConfigError(
                    f"env.vectorization=envpool: EnvPool's '{env_id}' observes {pool_obs} "
                    f"where Gymnasium's observes {ours}; use sync or async"
                )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n_envs)
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
            obs, info = self.pool.reset()
        if self.episodic_life:
            self._lives[:] = info["lives"]
            self._lost_life[:] = False
        return obs, info

    def step(self, actions: np.ndarray) -> tuple:
        """One step of every copy (EnvPool casts actions to its dtypes: int32, float64 for
        MuJoCo); finished copies restart only once ``reset_copies`` is called. With episodic
        life, a copy that lost a life (and goes on) is terminated."""
        obs, reward, terminated, truncated, info = self.pool.step(actions)
        self._obs = obs
        if self.episodic_life:
            lives = info["lives"]
            self._lost_life = (lives < self._lives) & ~(terminated | truncated)
            self._lives[:] = lives
            terminated = terminated | self._lost_life
        return obs, reward, terminated, truncated, info

    def reset_copies(self, done: np.ndarray) -> np.ndarray:
        """Reset the ``done`` copies now; returns the observations of every copy (new ones for
        those), leaving the last step's observations (the final ones) untouched. A copy that
        only lost a life goes on from its current frame."""
        new_obs = self._obs.copy()
        restart = np.flatnonzero(done & ~self._lost_life)
        if restart.size:
            obs, info = self.pool.reset(restart)
            new_obs[info["env_id"]] = obs
            if self.episodic_life:
                self._lives[info["env_id"]] = info["lives"]
        return new_obs

    def close(self) -> None:
        self.pool.close()


def envpool_id(gym_id: str) -> str:
    """EnvPool's name for a Gymnasium id: ALE's games without the ALE/ prefix."""
    return gym_id.removeprefix("ALE/")


def atari_options(gym_id: str, atari: Mapping, *, training: bool) -> dict:
    """``env.atari`` (and the id's sticky actions) as EnvPool's Atari options: the preprocessing
    that ``envs.atari.wrap_atari`` applies on the sync and async paths, run in EnvPool's C++."""
    return {
        "noop_max": atari["noop_max"],
        "frame_skip": atari["frame_skip"],
        "img_height": atari["screen_size"],
        "img_width": atari["screen_size"],
        "stack_num": atari["frame_stack"],
        "gray_scale": True,
        "use_fire_reset": True,  # in games whose action set has FIRE
        "episodic_life": training and atari["episodic_life"],
        "reward_clip": training and atari["clip_reward"],
        # Gymnasium's v5 ids repeat the last action with p = 0.25; EnvPool's default is 0
        "repeat_action_probability": gym.spec(gym_id).kwargs.get("repeat_action_probability", 0),
    }


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
    if envpool_id(env_id) not in ids:
        raise ConfigError(
            f"env.vectorization=envpool: EnvPool has no '{env_id}'"
            f"{did_you_mean(env_id, [i for i in ids if i in gym.registry])}; use sync or async"
        )
    config = envpool.make_spec(envpool_id(env_id)).config
    options = [k for k in config._fields if k not in _POOL_KEYS]
    unknown = sorted(k for k in kwargs if k not in options)
    if unknown:
        raise ConfigError(
            f"env.vectorization=envpool: EnvPool's '{env_id}' takes no env.kwargs "
            f"{', '.join(unknown)} (it takes {', '.join(options) or 'none'}); use sync or async"
        )
