"""Action distributions for each supported action space.

Discrete and Box policies use small classes of their own instead of torch.distributions: a
distribution is built on every acting step and every minibatch, and torch's argument handling
and lazy properties cost more than the math on these tiny batches (docs/performance.md).
"""

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# an illegal action's logit (sb3-contrib's choice): its probability is exactly 0 in float32, its
# log-probability finite, so the entropy's 0 * log 0 terms and their gradients stay 0 (not NaN)
MASKED_LOGIT = -1e8


class LogitsCategorical:
    """A categorical over the last dim of ``logits``: sample, log_prob, entropy; with ``mask``
    (bools like ``logits``: the legal actions) over the legal actions only, which are never
    sampled and add nothing to the entropy."""

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            logits = mask_logits(logits, mask)
        self.logits = logits.log_softmax(-1)  # normalized once, reused by every method

    def sample(self) -> torch.Tensor:
        probs = self.logits.exp().reshape(-1, self.logits.shape[-1])
        return torch.multinomial(probs, 1).view(self.logits.shape[:-1])

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)


class DiagGaussian:
    """A diagonal Gaussian; log-probs and entropies sum over the trailing ``event_dims`` dims."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor, event_dims: int):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.dims = tuple(range(-event_dims, 0))

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) * torch.exp(-self.log_std)
        return self._sum(-0.5 * z.square() - self.log_std - HALF_LOG_2PI)

    def entropy(self) -> torch.Tensor:
        return self._sum(0.5 + HALF_LOG_2PI + self.log_std)

    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        # a scalar Box (shape ()) has no event dims; torch's sum(()) would sum every dim
        return x.sum(self.dims) if self.dims else x


class MultiCategorical(Distribution):
    """Independent categoricals, one per MultiDiscrete dimension (log-probs and entropies add)."""

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor, nvec: list[int]):
        self.dists = [
            Categorical(logits=part, validate_args=False)
            for part in torch.split(logits, nvec, dim=-1)
        ]
        super().__init__(logits.shape[:-1], torch.Size([len(nvec)]), validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return torch.stack([d.sample(sample_shape) for d in self.dists], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(d.log_prob(value[..., i]) for i, d in enumerate(self.dists))

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self.dists)


def mask_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with the illegal actions' (``mask`` false) set to ``MASKED_LOGIT``."""
    return logits.masked_fill(~mask.bool(), MASKED_LOGIT)


def make_dist(
    params: torch.Tensor,
    action_info: SpaceInfo,
    log_std: nn.Parameter | None,
    mask: torch.Tensor | None = None,
):
    """The policy's distribution over actions, from the network's output ``params``.

    Discrete: Categorical over logits (over the legal actions when ``mask`` is given: the
    env's ``action_mask``). MultiDiscrete: one Categorical per dimension.
    MultiBinary: independent Bernoullis over logits. Box: diagonal Gaussian with the
    state-independent ``log_std``. Log-probs and entropies sum over action dimensions.
    """
    kind = action_info.kind
    if kind == SpaceKind.DISCRETE:
        return LogitsCategorical(params, mask)
    if kind == SpaceKind.MULTI_DISCRETE:
        return MultiCategorical(params, action_info.nvec)
    if kind == SpaceKind.MULTI_BINARY:
        return Independent(Bernoulli(logits=params, validate_args=False), 1, validate_args=False)
    mean = params.reshape(*params.shape[:-1], *action_info.shape)
    return DiagGaussian(mean, log_std, len(action_info.shape))


def greedy_action(
    params: torch.Tensor, action_info: SpaceInfo, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The most likely action under ``make_dist(params, ...)`` (deterministic evaluation; the
    most likely legal one with ``mask``), computed from the network's output alone so that
    exported policies need no distribution."""
    kind = action_info.kind
    if kind == SpaceKind.DISCRETE:
        return (params if mask is None else mask_logits(params, mask)).argmax(-1)
    if kind == SpaceKind.MULTI_DISCRETE:
        parts = torch.split(params, action_info.nvec, dim=-1)
        return torch.stack([part.argmax(-1) for part in parts], dim=-1)
    if kind == SpaceKind.MULTI_BINARY:
        return (params > 0).float()
    return params.reshape(*params.shape[:-1], *action_info.shape)
