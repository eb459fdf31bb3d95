"""Gymnasium spaces as the ``SpaceInfo`` descriptions the builders use."""

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np
import torch
from gymnasium import spaces

from torchrl_cli.errors import ConfigError

SUPPORTED_ACTIONS = "Discrete, Box, MultiDiscrete, MultiBinary"
SUPPORTED_STATES = "Box"


class SpaceKind(StrEnum):
    CONTINUOUS = "continuous"  # Box
    DISCRETE = "discrete"
    MULTI_DISCRETE = "multi_discrete"
    MULTI_BINARY = "multi_binary"


@dataclass(frozen=True, eq=False)
class SpaceInfo:
    """What the builders need of an observation or action space: its kind, shape and dtype,
    and by kind the bounds (Box), ``n`` (Discrete: actions; MultiBinary: bits) or ``nvec``
    (MultiDiscrete: choices per dimension)."""

    kind: SpaceKind
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    n: int | None = None
    nvec: tuple[int, ...] | None = None

    def to_json(self) -> str:
        """As JSON (bounds as lists), e.g. for checkpoints."""
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        as_lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}
        return json.dumps(as_lists)

    @classmethod
    def from_json(cls, text: str) -> "SpaceInfo":
        data = json.loads(text)
        for key in ("low", "high"):
            if key in data:
                data[key] = np.asarray(data[key], dtype=np.float32)
        data["shape"] = tuple(data["shape"])
        if "nvec" in data:
            data["nvec"] = tuple(data["nvec"])
        return cls(**{**data, "kind": SpaceKind(data["kind"])})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpaceInfo) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())


def state_info(space: spaces.Space, env_id: str) -> SpaceInfo:
    """Shape, dtype and bounds of an observation space (Box only)."""
    if not isinstance(space, spaces.Box):
        raise ConfigError(
            f"env '{env_id}' has observation space {space}, which torchrl-cli cannot handle "
            f"(supported: {SUPPORTED_STATES}); wrap it with a Gymnasium observation wrapper "
            "through env.wrappers"
        )
    return SpaceInfo(
        SpaceKind.CONTINUOUS, tuple(space.shape), str(space.dtype), space.low, space.high
    )


def action_info(space: spaces.Space, env_id: str) -> SpaceInfo:
    """The kind (discrete | continuous | multi_discrete | multi_binary), shape, and n, nvec or
    bounds of an action space."""
    if isinstance(space, spaces.Discrete) and space.start == 0:
        return SpaceInfo(SpaceKind.DISCRETE, (), "int64", n=int(space.n))
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
        nvec = tuple(int(n) for n in space.nvec)
        return SpaceInfo(SpaceKind.MULTI_DISCRETE, tuple(space.shape), "int64", nvec=nvec)
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        shape = tuple(space.shape)
        return SpaceInfo(SpaceKind.MULTI_BINARY, shape, "int8", n=int(shape[0]))
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        return SpaceInfo(SpaceKind.CONTINUOUS, tuple(space.shape), "float32", low, high)
    raise ConfigError(
        f"env '{env_id}' has action space {space}, which torchrl-cli cannot handle yet "
        f"(supported: {SUPPORTED_ACTIONS}, starting at 0, one-dimensional); pick another env "
        "or wrap this one with a Gymnasium action wrapper through env.wrappers"
    )


def to_env_action(actions: torch.Tensor | np.ndarray, info: SpaceInfo) -> np.ndarray:
    """Actions as the env takes them: Box actions clipped to the bounds, MultiBinary as int8."""
    if isinstance(actions, torch.Tensor):
        actions = actions.cpu().numpy()
    if info.kind == SpaceKind.CONTINUOUS:
        actions = np.clip(actions, info.low, info.high)
    elif info.kind == SpaceKind.MULTI_BINARY:
        actions = actions.astype(np.int8)
    return actions
