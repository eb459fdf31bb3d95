"""The vector-env protocol: what the collector, the evaluation and the run ask of a batch of
env copies. Every implementation (``GymEnv`` over each registered vectorization, and later kinds
of env: many agents, remote copies) provides all of it, and ``tests/test_vec_conformance.py``
checks each registered one."""

import abc
from typing import NamedTuple

import numpy as np

from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.errors import FaultError, first_line


class EnvStep(NamedTuple):
    """One vector step. ``final_obs`` holds, for envs whose episode ended in this step, the last
    observation of that episode (``obs`` already holds the first one of the next episode);
    ``action_mask``: ``[N, n_actions]`` bools, the legal actions at ``obs`` (None: unmasked)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray | None
    action_mask: np.ndarray | None = None
    valid: np.ndarray | None = None


class EnvError(FaultError):
    """The env raised while stepping or resetting (its exception's first line is in the
    message; the full traceback is the cause, shown with TORCHRL_DEBUG=1)."""


def env_seeds(seed: int, n: int) -> list[int]:
    """The seeds of the ``n`` copies of a run seeded with ``seed`` (independent streams)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def raised(err: BaseException) -> str:
    """``Type: first line`` of what an env raised (the type alone when it says nothing)."""
    text = first_line(err, limit=None, empty="")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class BaseEnv(abc.ABC):
    """A batch of ``n_envs`` copies of one environment that reset themselves when done, on the
    same step (the step's ``final_obs`` holds the last observation of each finished episode).

    ``action_mask``: the legal actions ``[n_envs, n]`` at the last observations when the env
    gives them (``get_action_info().mask`` says from where), else None; callers read it, and
    only a resume writes it back (``set_state`` restores the copies, not their last mask).

    ``n_agents``: the rows each copy has (1; a multi-agent env's copies have one per agent,
    copy-major); ``valid``: the rows that hold an agent at the last observations (None: all).
    An invalid row's step gives reward 0 and no episode end, and nothing learns from it.
    """

    n_envs: int
    action_mask: np.ndarray | None
    n_agents: int = 1
    valid: np.ndarray | None = None

    @abc.abstractmethod
    def get_state_info(self) -> SpaceInfo:
        """The observations, as the env gives them to the collector (encoded to one array)."""

    @abc.abstractmethod
    def get_action_info(self) -> SpaceInfo:
        """The actions the env takes (and where its action masks come from)."""

    @property
    @abc.abstractmethod
    def simulator(self) -> str:
        """What steps the env (mujoco, box2d, classic_control, ale_py, or a module's name)."""

    @property
    @abc.abstractmethod
    def state_holder(self) -> str:
        """What holds the episodes in progress (the simulator, or a pool of copies)."""

    @property
    @abc.abstractmethod
    def restorable(self) -> bool:
        """Whether ``set_state`` restores the episodes in progress exactly."""

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every copy (each with its own seed drawn from ``seed``); the observations."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> EnvStep:
        """Step every copy; finished ones restart within the step."""

    @abc.abstractmethod
    def get_state(self) -> list[str]:
        """JSON snapshots of the copies (for exact resume where ``restorable``)."""

    @abc.abstractmethod
    def set_state(self, state: list[str]) -> None:
        """Restore ``get_state()``'s snapshots."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the copies (and their processes or threads)."""
