"""Environments: vectorized Gymnasium envs, space descriptions, normalization."""

from torchrl_cli.envs.gym_env import BaseEnv, EnvStep, GymEnv, check_env_id, env_seeds
from torchrl_cli.envs.normalize import RewardScaler, RunningMeanStd, StateNormalizer
from torchrl_cli.envs.spaces import action_info, state_info

__all__ = [
    "BaseEnv",
    "EnvStep",
    "GymEnv",
    "RewardScaler",
    "RunningMeanStd",
    "StateNormalizer",
    "action_info",
    "check_env_id",
    "env_seeds",
    "state_info",
]
