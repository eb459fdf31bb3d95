"""VanillaPGModel and A2CModel: the policy-gradient-theorem loss."""

import torch

from torchrl_cli.models.base_pg import BasePGModel
from torchrl_cli.models.batch import Batch


class VanillaPGModel(BasePGModel):
    """The classical policy gradient (Williams 1992; Sutton et al. 2000):
    L^PG = -E[ log pi(a|s) * A ], with A from any advantage estimator (returns minus a baseline).
    """


    def pg_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        dist = self.batch_dist(batch)
        log_probs = dist.log_prob(batch.actions)
        loss = -(log_probs * batch.advantages).mean()
        log_ratio = log_probs.detach() - batch.log_probs  # for the KL diagnostic only
        return {
            "loss_policy": self.loss_coef * loss,
            "policy_loss": loss.detach(),
            **self.entropy_loss(dist),
            **self.kl_diagnostics(log_ratio, log_ratio.exp()),
        }

    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.pg_loss(batch)


class A2CModel(VanillaPGModel):
    """Synchronous advantage actor-critic (Mnih et al. 2016, https://arxiv.org/abs/1602.01783):
    the policy-gradient loss on short rollouts from many envs stepped in lockstep, one gradient
    step per rollout, advantages from a learned value function (the agent's ValueModel)."""
