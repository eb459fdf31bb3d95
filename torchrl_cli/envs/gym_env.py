"""Vectorized Gymnasium environments behind the seed's BaseEnv/GymEnv interface."""

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import gymnasium as gym
import numpy as np

from torchrl_cli.envs import workers
from torchrl_cli.envs.base import BaseEnv, EnvError, EnvStep, env_seeds, raised
from torchrl_cli.envs.encode import encode_numpy, make_encoder
from torchrl_cli.envs.native import OWN_NATIVE, has_native
from torchrl_cli.envs.registry import resolve_env_id
from torchrl_cli.envs.snapshot import EXACT_SIMULATORS, restore, snapshot
from torchrl_cli.envs.spaces import (
    MASK_KEY,
    SpaceInfo,
    action_info,
    check_mask,
    mask_source,
    state_info,
)
from torchrl_cli.envs.vector import VECTORIZATIONS
from torchrl_cli.envs.workers import StallWatch, WorkerFailure
from torchrl_cli.errors import ConfigError

#: env.vectorization's values: auto, or a registered vectorization (``envs.vector``)
VECTORIZATION_CHOICES = ("auto", *VECTORIZATIONS)
# auto picks native from this many copies: below ~5, SyncVectorEnv steps CartPole faster
# (a native step costs ~30 us of numpy calls whatever the batch; docs/performance.md);
# Pendulum's native env (~20 us a step) is faster from 2 copies, but one threshold serves both
NATIVE_MIN_ENVS = 8


# simulators whose step costs enough that copies in subprocesses can pay for the round trips
SUBPROCESS_WORTHY = ("mujoco", "box2d")


def auto_process_vectorization(gym_id: str, n_envs: int) -> str:
    """``async`` for a costly simulator when there are copies to step in parallel and every
    copy can have a core of its own beside the learner's, else ``sync``. Measured on this
    project's 2-core machine: HalfCheetah-v5 with 8 copies, 20k steps, took 2.6 s of training
    async against 1.5 s sync, identical returns: with fewer cores than copies the round trips
    cost more than the parallel steps; one copy (rl-zoo3's HalfCheetah recipe) steps nothing in
    parallel, so its round trips are pure cost. The cores are those this process may run on (a
    SLURM job's allocation), not the machine's."""
    costly = simulator_of(gym_id) in SUBPROCESS_WORTHY
    return "async" if costly and 1 < n_envs < usable_cores() else "sync"


def simulator_of(gym_id: str) -> str:
    """What steps the env, from its entry point: mujoco, box2d, classic_control, toy_text,
    ale_py, or the entry point's module (a partially observed id's: its full env's)."""
    from torchrl_cli.envs.partial import NO_VELOCITY

    if gym_id in NO_VELOCITY:
        gym_id = NO_VELOCITY[gym_id][0]
    entry = str(gym.spec(gym_id).entry_point)
    for name in ("mujoco", "box2d", "classic_control", "toy_text", "ale_py"):
        if name in entry:
            return name
    return entry.split(":")[0]


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPU set of the job, under SLURM too
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def mujoco_warnings_once() -> None:
    """MuJoCo prints a warning each time it compiles a model with one (Gymnasium's v5 XML files
    set ``settotalmass``, which MuJoCo 3.3+ deprecates), and a run compiles one per env copy,
    the evaluation env's 20 included. From the first MuJoCo env on, each distinct warning is
    printed once per process, as MuJoCo words it; a handler someone else set is left alone."""
    try:
        import mujoco
    except ImportError:
        return
    if mujoco.get_mju_user_warning() is not None:
        return
    seen: set[str] = set()

    def warn(message: str) -> None:
        if message not in seen:
            seen.add(message)
            print(f"WARNING: {message}", file=sys.stderr, flush=True)

    mujoco.set_mju_user_warning(warn)


class GymEnv(BaseEnv):
    """``n_envs`` copies of a Gymnasium env, stepped as a registered vectorization
    (``envs.vector``) says: in this process (sync), in subprocesses (async), as one numpy batch
    by a native vector env (native: Gymnasium's CartPole, our Pendulum) or by EnvPool's C++
    threads (envpool, optional: ``envs.envpool_env``), with same-step autoreset so that a
    time-limit truncation can bootstrap from the final observation. An env that gives its legal
    actions (``envs.spaces.MASK_KEY``) has them in ``action_mask`` after each reset and
    step (and in ``EnvStep.action_mask``).

    Parameters:
        env_name: a Gymnasium id, registered or made registrable by ``imports`` or the
            ``<module>:<EnvId>`` form (see ``envs.registry``).
        n_envs: number of copies.
        vectorization: ``sync``, ``async``, ``native``, ``envpool`` or ``auto`` (native where
            the env has one torchrl-cli supports, no wrappers or render_mode are given and
            ``n_envs >= 8``, else sync; never envpool, which is opt-in).
        wrappers: callables applied to each copy, in order (each receives and returns an env).
        imports: packages to import first (each registers ids).
        **kwargs: passed to ``gymnasium.make``.
    """

    def __init__(
        self,
        env_name: str,
        *,
        n_envs: int,
        vectorization: str,
        wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
        imports: Sequence[str] = (),
        **kwargs,
    ):
        gym_id = check_env_id(env_name, imports)
        if vectorization not in VECTORIZATION_CHOICES:
            raise ConfigError(
                f"env.vectorization='{vectorization}' is not one of "
                f"{', '.join(VECTORIZATION_CHOICES)}"
            )
        if vectorization == "auto":
            native = (
                has_native(gym_id)
                and not wrappers
                and kwargs.get("render_mode") is None  # rendering goes copy by copy: sync
                and n_envs >= NATIVE_MIN_ENVS
            )
            vectorization = "native" if native else auto_process_vectorization(gym_id, n_envs)
        self.env_name = env_name
        self.gym_id = gym_id  # the registered id env_name resolves to
        self.n_envs = n_envs
        self.vectorization = vectorization
        if self.simulator == "mujoco":
            mujoco_warnings_once()
        chosen = VECTORIZATIONS[vectorization]
        self.vec = chosen.make(gym_id, n_envs, wrappers, kwargs)
        # copies stepped in this process: a step that never returns is said (async: cut short)
        self._watch = None if vectorization == "async" else StallWatch(
            env_name, workers.STEP_TIMEOUT_S)
        self._reset_copies = chosen.reset_copies  # None: the copies reset on the same step
        obs_space = self.vec.single_observation_space
        self._state_info = state_info(obs_space, env_name)
        self._action_info = action_info(self.vec.single_action_space, env_name)
        self._mask = mask_source(obs_space)
        if self._mask is None and chosen.per_copy:
            self._mask = "info" if gives_info_mask(gym_id, kwargs) else None
        if self._mask is not None:
            check_mask(self._action_info, obs_space, env_name)
            self._action_info = replace(self._action_info, mask=self._mask)
        self.action_mask: np.ndarray | None = None  # the legal actions now, when masked
        # observations that are not a plain Box arrive encoded to one array (envs.encode)
        self._encoder = make_encoder(self._state_info)

    def get_state_info(self) -> SpaceInfo:
        return self._state_info

    def get_action_info(self) -> SpaceInfo:
        return self._action_info

    @property
    def simulator(self) -> str:
        return simulator_of(self.gym_id)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every copy with its own seed drawn from ``SeedSequence(seed)``, so that runs
        with neighbouring seeds share no env stream (seed + i would)."""
        seeds = None
        if seed is not None:
            seeds = env_seeds(seed, self.n_envs)
            self.vec.action_space.seed(seed)
        if self.vectorization == "native" and self.gym_id not in OWN_NATIVE and seeds:
            seeds = seeds[0]  # Gymnasium's native envs draw every copy from one generator
        watch = self._watch
        if watch is not None:
            watch.since = time.monotonic()
        try:
            obs, info = self.vec.reset(seed=seeds)
        except WorkerFailure as err:
            raise EnvError(f"env {self.env_name}: {err}") from err
        except Exception as err:
            if merging_info(err):
                raise EnvError(f"env {self.env_name} returned an info that is not a dict from "
                               "reset(); Gymnasium's API needs a dict") from err
            raise EnvError(f"env {self.env_name} raised {raised(err)} in reset()") from err
        finally:
            if watch is not None:
                watch.since = None
        if self._mask is not None:
            self.action_mask = self._legal(obs, info)
        return encode_numpy(self._encoder, obs)

    def _legal(self, obs, info: dict) -> np.ndarray:
        """The legal actions ``[N, n]`` from the raw observations or the info (a copy that
        gives none in the info: all legal); EnvError for a copy with none legal."""
        n = self._action_info.n
        if self._mask == "obs":
            mask = np.asarray(obs[MASK_KEY]).reshape(self.n_envs, n).astype(bool)
        else:
            mask = np.ones((self.n_envs, n), dtype=bool)
            if MASK_KEY in info:
                given = np.asarray(info.get(f"_{MASK_KEY}", np.ones(self.n_envs, bool)), bool)
                mask[given] = np.stack(
                    [np.asarray(m).reshape(n) for m in np.asarray(info[MASK_KEY])[given]]
                ).astype(bool)
        if not mask.any(axis=1).all():
            copy = int(np.flatnonzero(~mask.any(axis=1))[0])
            raise EnvError(f"env {self.env_name} gave an action_mask with no legal action "
                           f"(copy {copy})")
        return mask

    def step(self, actions: np.ndarray) -> EnvStep:
        watch = self._watch
        if watch is not None:
            watch.since = time.monotonic()
        try:
            obs, reward, terminated, truncated, info = self.vec.step(actions)
        except WorkerFailure as err:  # an async worker died or hangs
            raise EnvError(f"env {self.env_name}: {err}") from err
        except Exception as err:  # the env's own failure, as one line (EnvError)
            if merging_info(err):
                raise EnvError(f"env {self.env_name} returned an info that is not a dict from "
                               "step(); Gymnasium's API needs a dict") from err
            raise EnvError(f"env {self.env_name} raised {raised(err)}") from err
        finally:
            if watch is not None:
                watch.since = None
        if self._reset_copies is not None:
            done = terminated | truncated
            if not done.any():
                return EnvStep(obs, reward, terminated, truncated, None)
            # obs holds the final observations of the finished copies (a fresh array)
            new_obs = self._reset_copies(self.vec, done)
            return EnvStep(new_obs, reward, terminated, truncated, obs)
        final_obs = None
        if self._mask is not None:
            self.action_mask = self._legal(obs, info)
        obs = encode_numpy(self._encoder, obs)
        if "_final_obs" in info:
            final_obs = np.array(obs, copy=True)
            done = info["_final_obs"]
            final = info["final_obs"][done]
            if self._encoder is not None:
                final = [encode_numpy(self._encoder, o) for o in final]
            final_obs[done] = np.stack(final)
        return EnvStep(obs, reward, terminated, truncated, final_obs, self.action_mask)

    @property
    def state_holder(self) -> str:
        """EnvPool's C++ pool, else the simulator."""
        return "EnvPool" if self.vectorization == "envpool" else self.simulator

    @property
    def restorable(self) -> bool:
        return self.state_holder in EXACT_SIMULATORS

    def get_state(self) -> list[str]:
        """JSON snapshots (see ``envs.snapshot``): one per copy, or one of the whole native
        vector env (EnvPool's: only its Python-side attributes)."""
        if self._reset_copies is not None:
            return [snapshot(self.vec)]
        return list(self.vec.call("get_snapshot"))

    def set_state(self, state: list[str]) -> None:
        expected = 1 if self._reset_copies is not None else self.n_envs
        if len(state) != expected:
            raise ValueError(f"{len(state)} env snapshots given where {expected} are needed")
        if self._reset_copies is not None:
            restore(self.vec, state[0])
            return
        self.vec.set_attr("pending_snapshot", list(state))  # one per copy
        self.vec.call("restore_pending_snapshot")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self.vec.close()


def merging_info(err: BaseException) -> bool:
    """Whether ``err`` came from the vector env merging its copies' infos (``_add_info``): a
    copy's info that is not a dict, in this process (async copies refuse it themselves)."""
    frame = err.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "_add_info":
            return True
        frame = frame.tb_next
    return False


# the Gymnasium envs that give no info["action_mask"] (toy_text's do: Taxi, ...), not probed
UNMASKED_ENTRY_POINTS = (
    "gymnasium.envs.classic_control", "gymnasium.envs.box2d", "gymnasium.envs.mujoco",
    "gymnasium.envs.phys2d", "gymnasium.envs.tabular", "ale_py",
)


_PROBED: dict[tuple[str, str], bool] = {}


def gives_info_mask(gym_id: str, kwargs: dict) -> bool:
    """Whether the env gives ``info["action_mask"]`` on reset: one copy, without the configured
    wrappers or rendering, is made and reset once to see, once per process for an id and its
    kwargs (the training and the evaluation env ask alike; Gymnasium's own envs that give none
    and ALE's are not probed)."""
    entry = str(gym.spec(gym_id).entry_point)
    if entry.startswith(UNMASKED_ENTRY_POINTS):
        return False
    kwargs = {k: v for k, v in kwargs.items() if k != "render_mode"}
    key = (gym_id, repr(sorted(kwargs.items())))
    if key not in _PROBED:
        _PROBED[key] = _probe_info_mask(gym_id, kwargs)
    return _PROBED[key]


def _probe_info_mask(gym_id: str, kwargs: dict) -> bool:
    try:
        env = gym.make(gym_id, **kwargs)
    except Exception:  # the vector env was made: an option of the wrappers'; no mask then
        return False
    try:
        _, info = env.reset()
    except Exception as err:
        raise EnvError(f"env {gym_id} raised {raised(err)} in reset()") from err
    finally:
        env.close()
    return MASK_KEY in info


def check_env_id(env_id: str, imports: Sequence[str] = ()) -> str:
    """The registered Gymnasium id ``env_id`` names (importing what registers it, see
    ``envs.registry``); ConfigError with ``unknown_env``'s message when there is none."""
    return resolve_env_id(env_id, imports)


def unknown_env(env_id: str, imports: Sequence[str] = ()) -> str:
    """Why an id is not registered: the module that failed to import or registers no such id,
    the package that would register it and how to install it, or else the closest ids."""
    try:
        resolve_env_id(env_id, imports)
    except ConfigError as err:
        return str(err)
    return f"env '{env_id}' could not be composed; `torchrl configs` lists the envs"
