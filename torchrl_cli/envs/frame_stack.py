"""``env.frame_stack=K``: each observation holds the last K of its episode, oldest first.

The stack is kept over the vector env (``BaseEnv``), not inside each copy, so that it works the
same with every vectorization (sync, async, native, envpool). A copy's stack starts over at
each episode start: filled with that episode's first observation (Gymnasium's
``FrameStackObservation`` ``padding_type="reset"``: no motion before the first step). The K
observations are joined along their first axis: vectors (a 1-D Box, or anything encoded to one
flat array, a Discrete observation's one-hot) to ``[K * D]``, images (channels first, as the
env gives them to the net) along their channels to ``[K * C, H, W]``, so that a CNN still reads
them. A Dict or Tuple observation (one flat vector of its encoded entries, ``envs.encode``) is
stacked entry by entry: each entry holds its own last K, so that an image entry is still one
image, ``[K * C, H, W]``, for its own CNN, and the entries are described as the stacks of raw
values Gymnasium's ``FrameStackObservation`` gives (``stacked_entry``).
"""

import dataclasses
import json

import gymnasium as gym
import numpy as np

from torchrl_cli.envs.base import BaseEnv, EnvStep
from torchrl_cli.envs.spaces import EntryKind, ObsEntry, SpaceInfo, SpaceKind, state_info

#: an image entry's raw layout -> the layout of K of them stacked on a new first axis
STACKED_LAYOUTS = {"hw": "chw", "chw": "schw", "hwc": "shwc"}


def frame_stack_refusal(env_cfg) -> str:
    """Why ``env.frame_stack`` cannot stack this env's observations (frames stacked already
    inside a Dict or Tuple, or an array of more than one axis that is not an image)."""
    return (
        f"env.frame_stack={env_cfg.frame_stack} stacks vectors, images and the entries of Dict "
        f"and Tuple observations, but {env_cfg.id}'s observations are neither a vector nor an "
        "image, or hold stacked frames already; drop env.frame_stack, or give the policy a "
        "memory (memory=lstm)"
    )


def stackable(info: SpaceInfo) -> bool:
    """Whether observations of ``info`` are flat vectors, single channels-first images or Dict
    and Tuple observations whose images are single frames, which ``FrameStack`` stacks."""
    if info.image:
        return True
    if info.structured:
        return all(e.kind != EntryKind.IMAGE or e.layout in STACKED_LAYOUTS for e in info.entries)
    return len(info.shape) == 1


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
        # a Dict or Tuple's flat vector: the columns of k of them, entry by entry
        self.order = entry_order(inner, k) if inner.structured else None

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
        return self.joined(self.stacks)

    def joined(self, stacks: np.ndarray) -> np.ndarray:
        """``[N, k, *observation]`` as the stacked observations ``[N, *shape]`` (a copy)."""
        if self.order is not None:
            return stacks.reshape(self.n_envs, -1)[:, self.order]
        return stacks.reshape(self.n_envs, *self.shape).copy()

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
            final_obs = self.joined(last)
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
    joined along the first axis: ``[k * D]`` or ``[k * C, H, W]``; a Dict or Tuple's as its
    entries' stacks (``stacked_entry``), one after another."""
    if info.structured:
        columns = entry_order(info, k) % info.shape[0]  # each stacked column's own column
        return SpaceInfo(
            SpaceKind.CONTINUOUS,
            (k * info.shape[0],),
            "float32",
            info.low[columns],
            info.high[columns],
            entries=tuple(stacked_entry(e, k) for e in info.entries),
        )
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


def stacked_entry(entry: ObsEntry, k: int) -> ObsEntry:
    """One Dict or Tuple entry as K of its raw values stacked on a new first axis (what
    ``FrameStackObservation`` gives; ``envs.encode`` encodes it to K encodings one after
    another): an image's layout becomes its stacked one (channels first: ``[K * C, H, W]``), a
    Discrete entry a MultiDiscrete one of K choices."""
    shape, size = (k, *entry.shape), k * entry.size
    if entry.kind == EntryKind.IMAGE:
        enc = (k * entry.enc_shape[0], *entry.enc_shape[1:])
        return dataclasses.replace(
            entry, shape=shape, enc_shape=enc, layout=STACKED_LAYOUTS[entry.layout]
        )
    if entry.kind == EntryKind.DISCRETE:
        return dataclasses.replace(
            entry, kind=EntryKind.MULTI_DISCRETE, shape=shape, enc_shape=(size,), n=None,
            nvec=(entry.n,) * k, start=tuple(entry.start) * k,
        )  # fmt: skip
    nvec = None if entry.nvec is None else tuple(entry.nvec) * k
    start = None if entry.start is None else tuple(entry.start) * k
    return dataclasses.replace(entry, shape=shape, enc_shape=(size,), nvec=nvec, start=start)


def entry_order(info: SpaceInfo, k: int) -> np.ndarray:
    """For K flat vectors of ``info``'s entries laid one after another (``[K * D]``), the
    columns that put each entry's K encodings together, entry after entry."""
    d, columns, start = info.shape[0], [], 0
    for entry in info.entries:
        own = np.arange(start, start + entry.size)
        columns += [j * d + own for j in range(k)]
        start += entry.size
    return np.concatenate(columns)
