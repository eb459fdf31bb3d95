"""SurrogatePGModel: the unclipped importance-ratio objective L^CPI."""

import torch

from torchrl_cli.models.base_pg import BasePGModel
from torchrl_cli.models.batch import Batch


class SurrogatePGModel(BasePGModel):
    """Maximizes L^CPI = E[ pi(a|s) / pi_old(a|s) * A ] (Schulman et al. 2017, eq. 6).

    Nothing in L^CPI keeps the policy near the rollout's: ``kl_early_stop`` bounds how far one
    batch's epochs move it (as rl-zoo3's and Spinning Up's ``target_kl`` do).

    Parameters:
        kl_target: d_targ, the KL that ``kl_early_stop`` scales.
        kl_early_stop: stop the batch's epochs once a minibatch's approx KL exceeds
            ``kl_early_stop * kl_target``. None (either of the two): never (the configs of runs
            saved before the stop existed have neither key).
        **kwargs: BasePGModel's parameters.
    """

    def __init__(
        self, net, *, kl_target: float | None = None, kl_early_stop: float | None = None, **kwargs
    ):
        super().__init__(net, **kwargs)
        self.kl_target = kl_target
        self.kl_early_stop = kl_early_stop

    def stop_early(self, terms: dict[str, torch.Tensor]) -> bool:
        return (
            self.kl_early_stop is not None
            and self.kl_target is not None
            and float(terms["approx_kl"]) > self.kl_early_stop * self.kl_target
        )

    @staticmethod
    def calculate_prob_ratio(new_log_probs: torch.Tensor, old_log_probs: torch.Tensor):
        """log r and r = pi(a|s) / pi_old(a|s), from log-probabilities."""
        log_ratio = new_log_probs - old_log_probs
        return log_ratio, log_ratio.exp()

    def ratio_and_dist(self, batch: Batch):
        dist = self.batch_dist(batch)
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
