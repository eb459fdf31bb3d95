"""The data between the collector and the learners: a rollout ``[T, N, ...]``, its flattened
batch, and how a rollout's steps are taken (``Acting``, implemented by the backends)."""

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import torch

if TYPE_CHECKING:  # the collector that calls Acting.steps
    from torchrl_cli.agents.batcher import Batcher


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
    masks: torch.Tensor | None = None  # [T, N, n_actions] bools: the legal actions (masked envs)
    # the time-limit cuts and their final observations, for re-evaluating final_values
    truncations: list["Truncation"] = field(default_factory=list)


@dataclass
class Batch:
    """Flattened training samples ``[B, ...]``; what each model's loss reads (by name)."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor  # log pi_old(a|s), at collection time
    values: torch.Tensor  # V_old(s), at collection time (recompute_advantages: the epoch's start)
    advantages: torch.Tensor
    returns: torch.Tensor  # the value targets
    masks: torch.Tensor | None = None  # the legal actions at collection time (masked envs)

    def __len__(self) -> int:
        return self.obs.shape[0]

    def index(self, idx: torch.Tensor) -> "Batch":
        """The samples at ``idx`` (a minibatch)."""
        values = (getattr(self, f.name) for f in fields(self))
        return Batch(*(None if v is None else v[idx] for v in values))


class Truncation(NamedTuple):
    """A time-limit cut at step ``t`` of the rollout: the envs cut, and their final
    observations (normalized, for the bootstrap V(final obs))."""

    t: int
    envs: np.ndarray
    final_obs: torch.Tensor


class Acting(Protocol):
    """How a rollout's steps are taken (``backends``: ``TorchActing``, ``NumpyActing``)."""

    def steps(self, batcher: "Batcher") -> list[Truncation]:
        """Step ``batcher.env`` ``batcher.n_steps`` times through ``batcher.env_step``, writing
        the normalized observations, actions and log-probs into ``batcher.buffers`` and leaving
        the next normalized observation in ``batcher.obs``."""
        ...
