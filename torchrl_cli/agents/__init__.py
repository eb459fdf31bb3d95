"""Agents: the training loop (BaseAgent) and the policy-gradient agent (PGAgent), with what the
loop uses besides the rollout layer: evaluation, the non-finite guard, signals, logger, and the
builders."""

from torchrl_cli.agents.base import BaseAgent, TrainResult, TrainSchedule
from torchrl_cli.agents.evaluation import Evaluation
from torchrl_cli.agents.pg import PGAgent

__all__ = ["BaseAgent", "Evaluation", "PGAgent", "TrainResult", "TrainSchedule"]
