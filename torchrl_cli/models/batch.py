"""What the collector hands to the learners: a rollout ``[T, N, ...]`` and its flattened batch."""

from dataclasses import dataclass, fields

import torch


@dataclass
class Rollout:
    """One rollout of ``T`` vector steps over ``N`` envs (tensors ``[T, N, ...]``)."""

    obs: torch.Tensor  # normalized, as the networks saw them (uint8 frames stay uint8)
    actions: torch.Tensor  # as sampled (unclipped for Box spaces)
    log_probs: torch.Tensor
    values: torch.Tensor  # V(s_t) at collection time
    rewards: torch.Tensor  # scaled when reward scaling is on
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor  # V(final obs) where truncated, else 0
    last_values: torch.Tensor  # [N]: V of the observation after the last step


@dataclass
class Batch:
    """Flattened training samples ``[B, ...]``; what each model's loss reads (by name)."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor  # log pi_old(a|s), at collection time
    values: torch.Tensor  # V_old(s), at collection time
    advantages: torch.Tensor
    returns: torch.Tensor  # the value targets

    def __len__(self) -> int:
        return self.obs.shape[0]

    def index(self, idx: torch.Tensor) -> "Batch":
        """The samples at ``idx`` (a minibatch)."""
        return Batch(*(getattr(self, f.name)[idx] for f in fields(self)))
