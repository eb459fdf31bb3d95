"""Advantage and value-target estimators over a ``Rollout`` shaped ``[T, N]`` (time, env).

Episode ends come in two kinds (Gymnasium's API): ``terminated`` (a true terminal state: the
future is worth 0) and ``truncated`` (a time limit cut the episode: the future is worth
V(final observation), given as ``final_values``). Either kind stops the advantage recursion.
"""

from dataclasses import dataclass

import torch

from torchrl_cli.models.batch import Rollout


@dataclass(frozen=True)
class GAE:
    """Generalized advantage estimation (Schulman et al. 2016, https://arxiv.org/abs/1506.02438).

    A_t = sum_l (gamma * lambda)^l delta_{t+l}, delta_t = r_t + gamma * V(s_{t+1}) - V(s_t).
    ``gae_lambda=1`` gives discounted returns minus V; ``gae_lambda=0`` the one-step TD error.
    """

    gamma: float
    gae_lambda: float

    @torch.no_grad()
    def __call__(self, rollout: Rollout) -> torch.Tensor:
        """Advantages ``[T, N]`` of ``rollout``.

        ``values[t]`` is V(s_t); ``last_values`` is V of the observation after the last step
        (the bootstrap for unfinished episodes); ``final_values[t]`` is V(final obs) where
        ``truncated[t]``.
        """
        rewards, values, last_values = rollout.rewards, rollout.values, rollout.last_values
        terminated, final_values = rollout.terminated, rollout.final_values
        done = terminated | rollout.truncated
        next_values = torch.cat([values[1:], last_values.unsqueeze(0)])
        next_values = torch.where(done, final_values, next_values)
        deltas = rewards + self.gamma * next_values * (~terminated) - values
        discounts = self.gamma * self.gae_lambda * (~done)
        advantages = torch.empty_like(rewards)
        running = torch.zeros_like(last_values)
        for t in range(rewards.shape[0] - 1, -1, -1):
            running = deltas[t] + discounts[t] * running
            advantages[t] = running
        return advantages


@dataclass(frozen=True)
class FromAdvantage:
    """Value targets from the advantages: V_target = A + V (the lambda-return under GAE)."""

    def __call__(self, advantages: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return advantages + values


@dataclass(frozen=True)
class DiscountedReturns:
    """Discounted returns G_t = r_t + gamma * G_{t+1}, cut at episode ends and bootstrapped
    from V at time-limit cuts and at the rollout's end (from 0 where there is no value model).

    The advantage estimator of REINFORCE (vanilla PG with ``agent.value=null``).
    """

    gamma: float

    @torch.no_grad()
    def __call__(self, rollout: Rollout) -> torch.Tensor:
        return GAE(self.gamma, 1.0)(rollout) + rollout.values
