"""The registry of vectorizations: how ``GymEnv`` makes its copies and keeps their autoreset on
the same step. A new way of stepping copies (remote workers, say) is a new entry here, and
``tests/test_vec_conformance.py`` runs every registered entry through the same checks."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from torchrl_cli.envs.envpool_env import EnvPoolVectorEnv
from torchrl_cli.envs.native import SAME_STEP_RESETS, make_native
from torchrl_cli.envs.snapshot import Snapshot
from torchrl_cli.envs.workers import WatchedAsyncVectorEnv

#: (gym id, number of copies, wrappers for each copy, gymnasium.make kwargs) -> a vector env
MakeVector = Callable[[str, int, Sequence, dict], gym.vector.VectorEnv]
#: (vector env, finished copies) -> the observations of every copy, new ones for the finished
ResetCopies = Callable[[gym.vector.VectorEnv, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Vectorization:
    """One way to step ``n_envs`` copies.

    ``reset_copies``: None for a vector env that autoresets on the same step itself and gives
    each finished episode's last observation in its info (Gymnasium's sync and async, with
    ``AutoresetMode.SAME_STEP``); its copies are separate envs, snapshotted one by one, and may
    give their legal actions in their infos. Otherwise the vector env steps the whole batch at
    once and resets on the next step: ``reset_copies`` resets the finished copies within the step
    that ended them, and the batch is snapshotted as one.
    """

    name: str
    make: MakeVector
    reset_copies: ResetCopies | None = None

    @property
    def per_copy(self) -> bool:
        return self.reset_copies is None


def gymnasium_vector(mode: str) -> MakeVector:
    """Gymnasium's ``make_vec`` in ``mode`` (sync or async), autoresetting on the same step,
    each copy wrapped in ``Snapshot`` (its state as JSON) after the configured wrappers; async
    copies run in watched workers (``envs.workers``: bounded waits, one-line failures)."""

    def make(gym_id: str, n_envs: int, wrappers: Sequence, kwargs: dict) -> gym.vector.VectorEnv:
        if mode == "async":
            return WatchedAsyncVectorEnv(gym_id, n_envs, [*wrappers, Snapshot], kwargs)
        return gym.make_vec(
            gym_id,
            num_envs=n_envs,
            vectorization_mode=mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            wrappers=[*wrappers, Snapshot],
            **kwargs,
        )

    return make


def native_reset(vec: gym.vector.VectorEnv, done: np.ndarray) -> np.ndarray:
    return SAME_STEP_RESETS[type(vec.unwrapped)](vec.unwrapped, done)


def envpool_reset(vec: EnvPoolVectorEnv, done: np.ndarray) -> np.ndarray:
    return vec.reset_copies(done)


VECTORIZATIONS: dict[str, Vectorization] = {}


def register(vectorization: Vectorization) -> None:
    VECTORIZATIONS[vectorization.name] = vectorization


register(Vectorization("sync", gymnasium_vector("sync")))
register(Vectorization("async", gymnasium_vector("async")))
register(Vectorization("native", make_native, native_reset))
register(Vectorization("envpool", EnvPoolVectorEnv, envpool_reset))
