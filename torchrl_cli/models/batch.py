"""The data between the collector, the actor and the learners: what an actor returns for one
vector step (``ActOut``), a rollout ``[T, N, ...]``, and its flattened batch."""

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
import torch

#: an actor's recurrent state for every env row (None: a feed-forward policy)
State = Any
#: a batch of arrays in the actor's or the update backend's own kind (torch or numpy)
Array = torch.Tensor | np.ndarray


class ActOut(NamedTuple):
    """What an actor gives for one vector step: the actions as sampled (unclipped for Box
    spaces), their log-probabilities, the recurrent state after the step (None:
    feed-forward) and, from an actor whose value shares the policy's body, V(obs) (None: the
    collector's value pass computes them). Tensors from the torch actor, numpy arrays from
    the numpy one. A NamedTuple: one is made per vector step, the cheapest record to make."""

    actions: Array
    log_probs: Array
    state: State = None
    values: Array | None = None


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
    # [T, N] bools: the rows whose observation begins an episode (a memory starts over there)
    first: torch.Tensor | None = None
    # memories only: each model's state before each step, ``[T, N, ...]`` by model name (the
    # update steps each env's sequence from its state before step 0)
    states: dict[str, torch.Tensor] | None = None
    # many agents: [T, N] bools, the rows that held an agent at step t (None: every row); the
    # batch keeps only those (``PGAgent.batch_of``)
    valid: torch.Tensor | None = None
    # the time-limit cuts and their final observations, for re-evaluating final_values
    truncations: list["Truncation"] = field(default_factory=list)


@dataclass
class Batch:
    """Flattened training samples ``[B, ...]``; what each model's loss reads (by name). The
    numpy update backend holds the same fields as numpy arrays (``index`` serves both)."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor  # log pi_old(a|s), at collection time
    values: torch.Tensor  # V_old(s), at collection time (recompute_advantages: the epoch's start)
    advantages: torch.Tensor
    returns: torch.Tensor  # the value targets
    masks: torch.Tensor | None = None  # the legal actions at collection time (masked envs)
    # memories: the rows are whole env sequences of ``seq_len`` steps each, one after another
    # (``rollout.minibatches.Sequences`` keeps them whole); ``first`` flags the episode starts
    # and ``states`` holds each model's state before each row
    first: torch.Tensor | None = None
    states: dict[str, torch.Tensor] | None = None
    seq_len: int | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    def index(self, idx: torch.Tensor) -> "Batch":
        """The samples at ``idx`` (a minibatch), in the batch's own kind of array."""
        if isinstance(self.obs, np.ndarray):
            idx = idx.numpy()

        def pick(v):
            if v is None or isinstance(v, int):
                return v
            if isinstance(v, dict):
                return {k: x[idx] for k, x in v.items()}
            return v[idx]

        return Batch(*(pick(getattr(self, f.name)) for f in fields(self)))


class Truncation(NamedTuple):
    """A time-limit cut at step ``t`` of the rollout: the envs cut, and their final
    observations (normalized, for the bootstrap V(final obs))."""

    t: int
    envs: np.ndarray
    final_obs: torch.Tensor
