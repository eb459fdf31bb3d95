"""gSDE: generalized state-dependent exploration (Raffin, Kober and Stulp, "Smooth Exploration
for Robotic Reinforcement Learning", CoRL 2021, https://arxiv.org/abs/2005.05719).

A Gaussian policy's exploration noise is a function of the state instead of white noise: with
phi(s) the policy's last hidden features (what its output layer reads) and W a matrix drawn
from N(0, sigma^2) entry by entry, the action is a = mu(s) + phi(s)^T W. W is held for several
steps, so the noise changes smoothly along a trajectory. For a fixed s, a_j is Gaussian with
mean mu_j(s) and variance sum_i phi_i(s)^2 sigma_ij^2: the policy's log-probabilities and
entropy are those of that diagonal Gaussian. sigma is learned (as log sigma, one per feature and
action dimension); the features reach the std without their gradient unless ``learn_features``.
"""

import math

import torch
from torch import nn

from torchrl_cli.models.distributions import DiagGaussian

# added to the variance: phi = 0 (ReLU features all off) would give a zero std (SB3's 1e-6)
VARIANCE_EPS = 1e-6


class StateDependentNoise(nn.Module):
    """The noise matrices and their learned scales for ``latent_dim`` features and an action
    space of ``action_shape``.

    Parameters:
        latent_dim: the number of features phi (the output layer's flattened input).
        action_shape: the Box action shape (its dims are flattened into the matrix's columns).
        log_std_init: every log sigma_ij's initial value.
        sample_freq: steps of a rollout between new matrices (each rollout's first step draws
            one in any case); -1: only at rollout start.
        learn_features: let the std's gradient flow into phi (and so into the policy's body).
    """

    def __init__(
        self,
        latent_dim: int,
        action_shape: tuple[int, ...],
        *,
        log_std_init: float,
        sample_freq: int,
        learn_features: bool,
    ):
        super().__init__()
        self.action_shape = tuple(action_shape)
        n_actions = math.prod(self.action_shape)
        self.log_std = nn.Parameter(torch.full((latent_dim, n_actions), float(log_std_init)))
        self.sample_freq = sample_freq
        self.learn_features = learn_features
        self.weights: torch.Tensor | None = None  # [n_envs, latent_dim, n_actions]: one W per env

    def due(self, t: int) -> bool:
        """Whether step ``t`` of a rollout (0: its first) draws new matrices."""
        return t == 0 or (self.sample_freq > 0 and t % self.sample_freq == 0)

    @torch.no_grad()
    def resample(self, n_envs: int) -> None:
        """Draw one W per env from N(0, sigma^2) with the current sigma (torch's RNG)."""
        std = self.log_std.exp()
        self.weights = torch.randn(n_envs, *std.shape, device=std.device) * std

    def noise(self, latent: torch.Tensor) -> torch.Tensor:
        """phi^T W for each env's row of ``latent`` ``[n_envs, latent_dim]``, in action shape."""
        if self.weights is None or self.weights.shape[0] != latent.shape[0]:
            raise RuntimeError("gSDE noise needs resample(n_envs) for this batch of envs first")
        noise = torch.bmm(latent.unsqueeze(1), self.weights).squeeze(1)
        return noise.reshape(latent.shape[0], *self.action_shape)

    def log_std_of(self, latent: torch.Tensor) -> torch.Tensor:
        """log std_j = 0.5 log(sum_i phi_i^2 sigma_ij^2 + VARIANCE_EPS), per row, action-shaped."""
        phi = latent if self.learn_features else latent.detach()
        variance = phi.square() @ (2.0 * self.log_std).exp()
        return 0.5 * torch.log(variance + VARIANCE_EPS).reshape(-1, *self.action_shape)

    def dist(self, mean: torch.Tensor, latent: torch.Tensor) -> DiagGaussian:
        """The policy's Gaussian at these states: ``mean`` in action shape, the std from
        ``latent`` (``[B, latent_dim]``)."""
        return DiagGaussian(mean, self.log_std_of(latent), len(self.action_shape))
