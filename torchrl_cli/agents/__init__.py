"""Agents: the training loop (BaseAgent) and the policy-gradient agent (PGAgent)."""

from torchrl_cli.agents.base import BaseAgent, Evaluation, TrainResult
from torchrl_cli.agents.pg import PGAgent

__all__ = ["BaseAgent", "Evaluation", "PGAgent", "TrainResult"]
