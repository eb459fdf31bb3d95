"""Environments: vectorized Gymnasium envs, space descriptions, normalization, Atari
preprocessing."""

from torchrl_cli.envs.atari import is_atari, wrap_atari
from torchrl_cli.envs.base import BaseEnv, EnvError, EnvStep
from torchrl_cli.envs.gym_env import GymEnv, check_env_id, env_seeds
from torchrl_cli.envs.normalize import RewardScaler, RunningMeanStd, StateNormalizer
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind, action_info, state_info

__all__ = [
    "BaseEnv",
    "EnvError",
    "EnvStep",
    "GymEnv",
    "RewardScaler",
    "RunningMeanStd",
    "SpaceInfo",
    "SpaceKind",
    "StateNormalizer",
    "action_info",
    "check_env_id",
    "env_seeds",
    "is_atari",
    "state_info",
    "wrap_atari",
]
