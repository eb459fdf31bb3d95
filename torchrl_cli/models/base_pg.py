"""BasePGModel: a stochastic policy with an entropy bonus."""

import math

import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.distributions import greedy_action, make_dist
from torchrl_cli.models.sde import StateDependentNoise
from torchrl_cli.nn import ActionLinear


class BasePGModel(BaseModel):
    """Base of every policy-gradient model (after the seed's BasePGModel).

    Parameters:
        entropy_coef: weight of the entropy bonus (``loss_entropy = -entropy_coef * H``).
        log_std_init: Box actions: the initial log-std of the state-independent Gaussian (with
            gSDE: of each entry of the noise matrix, ``models.sde``).
        sde: the gSDE settings (``enabled``, ``sample_freq``, ``learn_features``); Box actions
            with ``enabled`` explore with state-dependent noise instead. None: off (the configs
            of runs saved before gSDE existed have no such key).
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
        sde: dict | None = None,
        **kwargs,
    ):
        super().__init__(net, action_info=action_info, **kwargs)
        self.action_info = action_info
        self.entropy_coef = entropy_coef
        self.log_std = None
        self.sde: StateDependentNoise | None = None
        if action_info.kind != SpaceKind.CONTINUOUS:
            return
        if sde is not None and sde["enabled"]:
            self.sde = StateDependentNoise(
                math.prod(self.latent_shape),
                tuple(action_info.shape),
                log_std_init=log_std_init,
                sample_freq=sde["sample_freq"],
                learn_features=sde["learn_features"],
            )
            scale = self.sde.log_std
        else:
            self.log_std = scale = nn.Parameter(torch.full(action_info.shape, float(log_std_init)))
        # the optimizer was built before the scale existed
        self.optimizer.add_param_group({"params": [scale]})
        self.initial_lr.append(self.initial_lr[0])

    @staticmethod
    def output_layer(input_shape: tuple[int, ...], action_info: SpaceInfo) -> nn.Module:
        return ActionLinear(input_shape, action_info)

    def create_dist(self, params: torch.Tensor, mask: torch.Tensor | None = None):
        """The distribution of ``params``; ``mask``: the legal actions (masked envs)."""
        return make_dist(params, self.action_info, self.log_std, mask)

    def sde_dist(self, obs: torch.Tensor):
        """gSDE: the features phi (flat, ``[B, latent_dim]``) and the policy's Gaussian."""
        return self.sde_dist_of(self.features(obs))

    def sde_dist_of(self, latent: torch.Tensor):
        """``sde_dist`` from the features phi (the memory's output, with a memory)."""
        mean = self.out(latent)
        latent = latent.reshape(latent.shape[0], -1)
        return latent, self.sde.dist(mean.reshape(mean.shape[0], *self.action_info.shape), latent)

    def policy_dist(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        """pi(.|obs), what the losses score actions under; ``mask``: the legal actions."""
        if self.sde is not None:
            return self.sde_dist(obs)[1]
        return self.create_dist(self(obs), mask)

    def batch_dist(self, batch: Batch):
        """pi(.|s) for every row of ``batch`` under its legal actions: ``policy_dist``, or with
        a memory from each env sequence stepped through (``over``)."""
        if self.memory is None:
            return self.policy_dist(batch.obs, batch.masks)
        latent = self.latent_over(batch)
        if self.sde is not None:
            return self.sde_dist_of(latent)[1]
        return self.create_dist(self.out(latent), batch.masks)

    def select_action(
        self, obs: torch.Tensor, deterministic: bool = False, mask: torch.Tensor | None = None
    ):
        """Sample (training) or take the mode (evaluation), among the legal actions when
        ``mask`` is given; returns actions and their log-probs. gSDE samples mean + phi^T W
        with the matrices ``sde.resample`` drew (one per row of ``obs``: one per env)."""
        if self.sde is not None:
            return self.choose_sde(*self.sde_dist(obs), deterministic)
        return self.choose(self(obs), deterministic, mask)

    def select_action_step(
        self,
        obs: torch.Tensor,
        state: torch.Tensor,
        first: torch.Tensor,
        deterministic: bool = False,
        mask: torch.Tensor | None = None,
    ):
        """``select_action`` for a policy with a memory: the state before the step in (rows
        where ``first`` start over), actions, log-probs and the state after it out."""
        latent, state = self.latent_step(obs, state, first)
        if self.sde is not None:
            return (*self.choose_sde(*self.sde_dist_of(latent), deterministic), state)
        return (*self.choose(self.out(latent), deterministic, mask), state)

    def choose_sde(self, latent: torch.Tensor, dist, deterministic: bool):
        actions = dist.mean if deterministic else dist.mean + self.sde.noise(latent)
        return actions, dist.log_prob(actions)

    def choose(self, params: torch.Tensor, deterministic: bool, mask: torch.Tensor | None):
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
    def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """approx KL(old || new) by the low-variance estimator (r - 1) - log r, differentiable."""
        return ((ratio - 1) - log_ratio).mean()

    @classmethod
    def kl_diagnostics(
        cls, log_ratio: torch.Tensor, ratio: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {"approx_kl": cls.approx_kl(log_ratio, ratio).detach()}
