"""``env.frame_stack=K``: each observation holds the last K of its episode, oldest first.

The stack is kept over the vector env (``BaseEnv``), not inside each copy, so that it works the
same with every vectorization (sync, async, native, envpool). A copy's stack starts over at
each episode start: filled with that episode's first observation (Gymnasium's
``FrameStackObservation`` ``padding_type="reset"``: no motion before the first step). The K
observations are joined along their first axis: vectors (a 1-D Box, or anything encoded to one
flat array: Dict and Tuple observations, Discrete ones) to ``[K * D]``, images (channels first,
as the env gives them to the net) along their channels to ``[K * C, H, W]``, so that a CNN
still reads them. Images inside a Dict or Tuple are not stacked here.
"""

import json

import gymnasium as gym
import numpy as np

from torchrl_cli.envs.base import BaseEnv, EnvStep
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind, state_info


def frame_stack_refusal(env_cfg) -> str:
    """Why ``env.frame_stack`` cannot stack this env's observations (images inside a Dict or
    Tuple)."""
    return (
        f"env.frame_stack={env_cfg.frame_stack} stacks vectors and single images, but "
        f"{env_cfg.id}'s observations hold images inside a Dict or Tuple; stack those frames "
        "with a wrapper in env.wrappers (gymnasium.wrappers.FrameStackObservation), or give "
        "the policy a memory (memory=lstm)"
    )


def stackable(info: SpaceInfo) -> bool:
    """Whether observations of ``info`` are flat vectors or single channels-first images, which
    ``FrameStack`` joins along their first axis."""
    if info.image:
        return True
    return len(info.shape) == 1 and all(e.kind != "image" for e in info.entries or ())


class FrameStack(BaseEnv):
    """The last ``k`` observations of ``env`` (a ``BaseEnv`` whose observations are flat
    vectors or channels-first images), joined along their first axis oldest first; a finished
    episode's ``final_obs`` is its own last ``k``. Snapshots hold the stacks beside the env's
    own (exact resume)."""

    def __init__(self, env: BaseEnv, k: int):
        self.env, self.k = env, k
        self.n_envs = env.n_envs
        inner = env.get_state_info()
        self._state_info = stacked_info(inner, k)
        self.shape = self._state_info.shape  # one stacked observation's
        self.stacks: np.ndarray | None = None  # [N, k, *observation]

    def __getattr__(self, name: str):  # vectorization, gym_id, env_name, ... of the env
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def action_mask(self) -> np.ndarray | None:
        return self.env.action_mask

    @action_mask.setter
    def action_mask(self, mask: np.ndarray | None) -> None:
        self.env.action_mask = mask

    def get_state_info(self) -> SpaceInfo:
        return self._state_info

    def get_action_info(self) -> SpaceInfo:
        return self.env.get_action_info()

    @property
    def simulator(self) -> str:
        return self.env.simulator

    @property
    def state_holder(self) -> str:
        return self.env.state_holder

    @property
    def restorable(self) -> bool:
        return self.env.restorable

    def flat(self) -> np.ndarray:
        return self.stacks.reshape(self.n_envs, *self.shape).copy()

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs = np.asarray(self.env.reset(seed=seed))
        self.stacks = np.repeat(obs[:, None], self.k, axis=1)
        return self.flat()

    def step(self, actions: np.ndarray) -> EnvStep:
        step = self.env.step(actions)
        done = np.asarray(step.terminated) | np.asarray(step.truncated)
        final_obs = None
        if done.any() and step.final_obs is not None:
            last = np.concatenate((self.stacks[:, 1:], np.asarray(step.final_obs)[:, None]), 1)
            final_obs = last.reshape(self.n_envs, *self.shape)
        obs = np.asarray(step.obs)
        self.stacks = np.concatenate((self.stacks[:, 1:], obs[:, None]), 1)
        if done.any():  # a new episode: its stack is its first observation, k times
            self.stacks[done] = obs[done][:, None]
        return step._replace(obs=self.flat(), final_obs=final_obs)

    def get_state(self) -> list[str]:
        stacks = None if self.stacks is None else self.stacks.tolist()
        dtype = None if self.stacks is None else str(self.stacks.dtype)
        return [*self.env.get_state(), json.dumps({"frame_stack": stacks, "dtype": dtype})]

    def set_state(self, state: list[str]) -> None:
        *inner, own = state
        self.env.set_state(inner)
        data = json.loads(own)
        if data["frame_stack"] is not None:
            self.stacks = np.asarray(data["frame_stack"], dtype=data["dtype"])

    def close(self) -> None:
        self.env.close()


def stacked_info(info: SpaceInfo, k: int) -> SpaceInfo:
    """``info`` of one vector ``[D]`` or image ``[C, H, W]`` as the description of ``k`` of them
    joined along the first axis: ``[k * D]`` or ``[k * C, H, W]``."""
    low, high = (
        None if bound is None else np.concatenate([np.broadcast_to(bound, info.shape)] * k)
        for bound in (info.low, info.high)
    )
    if info.image:  # channels first already: described as it is (no layout guess)
        shape = (k * info.shape[0], *info.shape[1:])
        return SpaceInfo(SpaceKind.CONTINUOUS, shape, info.dtype, low, high)
    space = gym.spaces.Box(
        low=-np.inf if low is None else low,
        high=np.inf if high is None else high,
        shape=(k * info.shape[0],),
        dtype=np.dtype(info.dtype),
    )
    return state_info(space, "frame_stack")
