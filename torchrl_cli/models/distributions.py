"""Action distributions for each supported action space."""

import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal


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


def make_dist(
    params: torch.Tensor, action_info: dict, log_std: nn.Parameter | None
) -> Distribution:
    """The policy's distribution over actions, from the network's output ``params``.

    Discrete: Categorical over logits. MultiDiscrete: one Categorical per dimension.
    MultiBinary: independent Bernoullis over logits. Box: diagonal Gaussian with the
    state-independent ``log_std``. Log-probs and entropies sum over action dimensions.
    """
    kind = action_info["kind"]
    if kind == "discrete":
        return Categorical(logits=params, validate_args=False)
    if kind == "multi_discrete":
        return MultiCategorical(params, action_info["nvec"])
    if kind == "multi_binary":
        return Independent(Bernoulli(logits=params, validate_args=False), 1, validate_args=False)
    mean = params.reshape(*params.shape[:-1], *action_info["shape"])
    std = log_std.exp().expand_as(mean)
    return Independent(
        Normal(mean, std, validate_args=False), len(action_info["shape"]), validate_args=False
    )


def greedy_action(params: torch.Tensor, action_info: dict) -> torch.Tensor:
    """The most likely action under ``make_dist(params, ...)`` (deterministic evaluation),
    computed from the network's output alone so that exported policies need no distribution."""
    kind = action_info["kind"]
    if kind == "discrete":
        return params.argmax(-1)
    if kind == "multi_discrete":
        parts = torch.split(params, action_info["nvec"], dim=-1)
        return torch.stack([part.argmax(-1) for part in parts], dim=-1)
    if kind == "multi_binary":
        return (params > 0).float()
    return params.reshape(*params.shape[:-1], *action_info["shape"])
