"""Gymnasium spaces as the plain dicts the builders use (``state_info``, ``action_info``)."""

import json

import numpy as np
import torch
from gymnasium import spaces

from torchrl_cli.errors import ConfigError

SUPPORTED_ACTIONS = "Discrete, Box, MultiDiscrete, MultiBinary"
SUPPORTED_STATES = "Box"


def state_info(space: spaces.Space, env_id: str) -> dict:
    """Shape, dtype and bounds of an observation space (Box only)."""
    if not isinstance(space, spaces.Box):
        raise ConfigError(
            f"env '{env_id}' has observation space {space}, which torchrl-cli cannot handle "
            f"(supported: {SUPPORTED_STATES}); wrap it with a Gymnasium observation wrapper "
            "through env.wrappers"
        )
    return {
        "kind": "continuous",
        "shape": tuple(space.shape),
        "dtype": str(space.dtype),
        "low": space.low,
        "high": space.high,
    }


def action_info(space: spaces.Space, env_id: str) -> dict:
    """Kind (discrete | continuous | multi_discrete | multi_binary), shape, and n, nvec or
    bounds of an action space."""
    if isinstance(space, spaces.Discrete) and space.start == 0:
        return {"kind": "discrete", "shape": (), "n": int(space.n), "dtype": "int64"}
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
        return {
            "kind": "multi_discrete",
            "shape": tuple(space.shape),
            "nvec": [int(n) for n in space.nvec],
            "dtype": "int64",
        }
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        return {
            "kind": "multi_binary",
            "shape": tuple(space.shape),
            "n": int(space.shape[0]),
            "dtype": "int8",
        }
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        return {
            "kind": "continuous",
            "shape": tuple(space.shape),
            "dtype": "float32",
            "low": space.low.astype(np.float32),
            "high": space.high.astype(np.float32),
        }
    raise ConfigError(
        f"env '{env_id}' has action space {space}, which torchrl-cli cannot handle yet "
        f"(supported: {SUPPORTED_ACTIONS}, starting at 0, one-dimensional); pick another env "
        "or wrap this one with a Gymnasium action wrapper through env.wrappers"
    )


def info_to_json(info: dict) -> str:
    """A ``state_info``/``action_info`` dict as JSON (bounds as lists), e.g. for checkpoints."""
    return json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in info.items()})


def info_from_json(text: str) -> dict:
    info = json.loads(text)
    info["shape"] = tuple(info["shape"])
    for key in ("low", "high"):
        if key in info:
            info[key] = np.asarray(info[key], dtype=np.float32)
    return info


def to_env_action(actions: torch.Tensor | np.ndarray, info: dict) -> np.ndarray:
    """Actions as the env takes them: Box actions clipped to the bounds, MultiBinary as int8."""
    if isinstance(actions, torch.Tensor):
        actions = actions.cpu().numpy()
    if info["kind"] == "continuous":
        actions = np.clip(actions, info["low"], info["high"])
    elif info["kind"] == "multi_binary":
        actions = actions.astype(np.int8)
    return actions
