"""PPOAdaptiveModel: the surrogate objective with an adaptive KL penalty."""

import torch

from torchrl_cli.models.batch import Batch
from torchrl_cli.models.surrogate_pg import SurrogatePGModel


class PPOAdaptiveModel(SurrogatePGModel):
    """PPO with an adaptive KL penalty, https://arxiv.org/abs/1707.06347 (section 4):
    L^KLPEN = E[ r A - beta KL(pi_old, pi) ].

    After each batch's update, d = the batch's mean KL: d < kl_target / 1.5 halves beta,
    d > 1.5 kl_target doubles it. KL is estimated per sample by (r - 1) - log r, which is
    unbiased under the old policy's actions and differentiable.

    Parameters:
        kl_target: d_targ (also what SurrogatePGModel's ``kl_early_stop`` scales).
        kl_penalty: beta's starting value.
        **kwargs: SurrogatePGModel's parameters (``kl_early_stop``) and BasePGModel's.
    """

    def __init__(self, net, *, kl_target: float, kl_penalty: float, **kwargs):
        super().__init__(net, kl_target=kl_target, **kwargs)
        self.kl_penalty = kl_penalty

    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        log_ratio, ratio, dist = self.ratio_and_dist(batch)
        kl = self.approx_kl(log_ratio, ratio)
        surrogate = -(ratio * batch.advantages).mean()
        return {
            "loss_policy": self.loss_coef * surrogate,
            "loss_kl_penalty": self.loss_coef * self.kl_penalty * kl,
            "policy_loss": surrogate.detach(),
            "approx_kl": kl.detach(),
            "kl_beta": torch.tensor(self.kl_penalty),
            **self.entropy_loss(dist),
        }

    def get_extra_state(self) -> dict:
        """beta changes during training: it travels in the state dict (checkpoints, resume)."""
        return {"kl_penalty": self.kl_penalty}

    def set_extra_state(self, state: dict) -> None:
        self.kl_penalty = state["kl_penalty"]

    @torch.no_grad()
    def on_batch_end(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Update beta from the mean KL between the rollout policy and the updated one."""
        log_ratio, ratio, _ = self.ratio_and_dist(batch)
        kl = float(self.approx_kl(log_ratio, ratio))
        self.kl_penalty = update_kl_penalty(self.kl_penalty, kl, self.kl_target)
        return {"batch_kl": torch.tensor(kl)}


def update_kl_penalty(beta: float, kl: float, kl_target: float) -> float:
    """The paper's rule: halve beta below d_targ / 1.5, double it above 1.5 d_targ."""
    if kl < kl_target / 1.5:
        return beta / 2
    if kl > kl_target * 1.5:
        return beta * 2
    return beta
