"""Trained policies outside training: ``load_policy`` in Python, ``export_policy`` for torch
alone. Both act as the final evaluation does: frozen normalization, greedy actions, clipping."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind, to_env_action
from torchrl_cli.models.distributions import greedy_action
from torchrl_cli.run.checkpoint import LAST, Checkpoint
from torchrl_cli.run.folder import load_run, load_weights


class GreedyPolicy(nn.Module):
    """Raw observations ``[B, *obs]`` to greedy actions ``[B, *action]``: the state
    normalizer with its frozen statistics, the policy network, the most likely action, and Box
    actions clipped to the bounds."""

    def __init__(self, normalizer: nn.Module, model: nn.Module, action_info: SpaceInfo):
        super().__init__()
        self.normalizer = normalizer.eval()
        self.model = model.eval()
        self.action_info = action_info
        self.clipped = action_info.kind == SpaceKind.CONTINUOUS
        if self.clipped:
            self.register_buffer("low", torch.as_tensor(action_info.low))
            self.register_buffer("high", torch.as_tensor(action_info.high))
        self.requires_grad_(False)  # acting only: exported outputs carry no autograd graph

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = greedy_action(self.model(self.normalizer.normalize(obs)), self.action_info)
        return torch.clamp(action, self.low, self.high) if self.clipped else action


class Policy:
    """A callable from an observation as the env gives it (one, or a batch) to an action as
    the env takes it; ``module`` is the underlying ``GreedyPolicy``."""

    def __init__(self, module: GreedyPolicy, state_info: SpaceInfo, action_info: SpaceInfo):
        self.module = module
        self.state_info = state_info
        self.action_info = action_info

    @torch.inference_mode()
    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs)
        single = obs.shape == tuple(self.state_info.shape)
        batch = torch.as_tensor(obs[None] if single else obs)
        actions = to_env_action(self.module(batch), self.action_info)
        return actions[0] if single else actions


def load_policy(
    run_dir: str | Path, checkpoint: str = LAST, trust: Iterable[str] = ()
) -> Policy:
    """The policy of a run folder's checkpoint (``last``, ``best`` or a file), ready to act::

    policy = load_policy("runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1")
    action = policy(obs)
    """
    return policy_from_checkpoint(*load_run(Path(run_dir), checkpoint, trust))


def policy_from_checkpoint(cfg: DictConfig, checkpoint: Checkpoint) -> Policy:
    """The policy of ``checkpoint``, of a run with config ``cfg``."""
    from torchrl_cli.agents.build import build_model, build_normalizer

    state_info, action_info = checkpoint.state_info, checkpoint.action_info
    model = build_model(cfg.agent.policy, cfg.net, state_info, action_info)
    load_weights(model, checkpoint.model_weights("policy"), checkpoint.path)
    normalizer = build_normalizer(cfg, state_info)
    load_weights(normalizer, checkpoint.normalizer_weights, checkpoint.path)
    return Policy(GreedyPolicy(normalizer, model, action_info), state_info, action_info)


def export_policy(policy: Policy, out: Path) -> Path:
    """Write ``policy`` as a ``torch.export`` program (batch size free): it runs with torch
    alone, ``torch.export.load(out).module()(obs)``."""
    example = torch.zeros((2, *policy.state_info.shape), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(policy.module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, out)
    return out
