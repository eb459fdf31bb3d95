"""Action distributions for each supported action space."""

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal


def make_dist(params: torch.Tensor, action_info: dict, log_std: nn.Parameter | None) -> Distribution:
    """Categorical over logits for Discrete spaces; a diagonal Gaussian with a state-independent
    log-std for Box spaces (log_prob and entropy sum over action dimensions)."""
    if action_info["kind"] == "discrete":
        return Categorical(logits=params, validate_args=False)
    mean = params.reshape(*params.shape[:-1], *action_info["shape"])
    std = log_std.exp().expand_as(mean)
    return Independent(Normal(mean, std, validate_args=False), len(action_info["shape"]),
                       validate_args=False)


def mode(dist: Distribution) -> torch.Tensor:
    """The most likely action (deterministic evaluation)."""
    if isinstance(dist, Categorical):
        return dist.logits.argmax(-1)
    return dist.mean
