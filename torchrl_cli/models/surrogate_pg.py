"""SurrogatePGModel: the unclipped importance-ratio objective L^CPI."""

import torch

from torchrl_cli.models.base_pg import BasePGModel
from torchrl_cli.models.batch import Batch


class SurrogatePGModel(BasePGModel):
    """Maximizes L^CPI = E[ pi(a|s) / pi_old(a|s) * A ] (Schulman et al. 2017, eq. 6)."""


    @staticmethod
    def calculate_prob_ratio(new_log_probs: torch.Tensor, old_log_probs: torch.Tensor):
        """log r and r = pi(a|s) / pi_old(a|s), from log-probabilities."""
        log_ratio = new_log_probs - old_log_probs
        return log_ratio, log_ratio.exp()

    def ratio_and_dist(self, batch: Batch):
        dist = self.policy_dist(batch.obs, batch.masks)
        log_ratio, ratio = self.calculate_prob_ratio(dist.log_prob(batch.actions), batch.log_probs)
        return log_ratio, ratio, dist

    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        log_ratio, ratio, dist = self.ratio_and_dist(batch)
        loss = -(ratio * batch.advantages).mean()
        return {
            "loss_policy": self.loss_coef * loss,
            "policy_loss": loss.detach(),
            **self.entropy_loss(dist),
            **self.kl_diagnostics(log_ratio.detach(), ratio.detach()),
        }
