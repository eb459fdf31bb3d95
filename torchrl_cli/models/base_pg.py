"""BasePGModel: a stochastic policy with an entropy bonus."""

import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.distributions import greedy_action, make_dist
from torchrl_cli.nn import ActionLinear


class BasePGModel(BaseModel):
    """Base of every policy-gradient model (after the seed's BasePGModel).

    Parameters:
        entropy_coef: weight of the entropy bonus (``loss_entropy = -entropy_coef * H``).
        log_std_init: Box actions: the initial log-std of the state-independent Gaussian.
        **kwargs: BaseModel's parameters.
    """

    output_gain = 0.01  # near-uniform initial actions (Andrychowicz et al. 2021)

    def __init__(
        self,
        net: nn.Module,
        *,
        action_info: SpaceInfo,
        entropy_coef: float,
        log_std_init: float,
        **kwargs,
    ):
        super().__init__(net, action_info=action_info, **kwargs)
        self.action_info = action_info
        self.entropy_coef = entropy_coef
        self.log_std = None
        if action_info.kind == SpaceKind.CONTINUOUS:
            self.log_std = nn.Parameter(torch.full(action_info.shape, float(log_std_init)))
            # the optimizer was built before log_std existed
            self.optimizer.add_param_group({"params": [self.log_std]})
            self.initial_lr.append(self.initial_lr[0])

    @staticmethod
    def output_layer(input_shape: tuple[int, ...], action_info: SpaceInfo) -> nn.Module:
        return ActionLinear(input_shape, action_info)

    def create_dist(self, params: torch.Tensor, mask: torch.Tensor | None = None):
        """The distribution of ``params``; ``mask``: the legal actions (masked envs)."""
        return make_dist(params, self.action_info, self.log_std, mask)

    def select_action(
        self, obs: torch.Tensor, deterministic: bool = False, mask: torch.Tensor | None = None
    ):
        """Sample (training) or take the mode (evaluation), among the legal actions when
        ``mask`` is given; returns actions and their log-probs."""
        params = self(obs)
        dist = self.create_dist(params, mask)
        if deterministic:
            actions = greedy_action(params, self.action_info, mask)
        else:
            actions = dist.sample()
        return actions, dist.log_prob(actions)

    def entropy_loss(self, dist) -> dict[str, torch.Tensor]:
        if self.entropy_coef == 0:  # no bonus: a diagnostic only, kept out of the backward pass
            with torch.no_grad():
                return {"entropy": dist.entropy().mean()}
        entropy = dist.entropy().mean()
        return {"loss_entropy": -self.entropy_coef * entropy, "entropy": entropy.detach()}

    @staticmethod
    def kl_diagnostics(log_ratio: torch.Tensor, ratio: torch.Tensor) -> dict[str, torch.Tensor]:
        """approx KL(old || new) by the low-variance estimator (r - 1) - log r."""
        return {"approx_kl": ((ratio - 1) - log_ratio).mean().detach()}
