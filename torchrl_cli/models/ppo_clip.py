"""PPOClipModel: the clipped surrogate objective L^CLIP."""

import torch

from torchrl_cli.models.base import schedule
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.surrogate_pg import SurrogatePGModel


class PPOClipModel(SurrogatePGModel):
    """Proximal Policy Optimization, https://arxiv.org/abs/1707.06347 (eq. 7):
    L^CLIP = E[ min(r A, clip(r, 1 - eps, 1 + eps) A) ].

    Parameters:
        ppo_clip_range: eps, the clip range of the probability ratio r.
        clip_schedule: ``constant`` or ``linear`` (eps annealed to 0 over the run).
        **kwargs: BasePGModel's parameters.
    """

    def __init__(self, net, *, ppo_clip_range: float, clip_schedule: str, **kwargs):
        super().__init__(net, **kwargs)
        self.initial_clip_range = ppo_clip_range
        self.ppo_clip_range = ppo_clip_range
        self.clip_schedule = clip_schedule

    def set_progress(self, progress: float) -> None:
        super().set_progress(progress)
        self.ppo_clip_range = schedule(self.clip_schedule, self.initial_clip_range, progress)

    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        log_ratio, ratio, dist = self.ratio_and_dist(batch)
        eps = self.ppo_clip_range
        unclipped = ratio * batch.advantages
        clipped = ratio.clamp(1 - eps, 1 + eps) * batch.advantages
        loss = -torch.minimum(unclipped, clipped).mean()
        return {
            "loss_policy": self.loss_coef * loss,
            "policy_loss": loss.detach(),
            "clip_fraction": ((ratio.detach() - 1).abs() > eps).float().mean(),
            "clip_epsilon": torch.tensor(eps),
            **self.entropy_loss(dist),
            **self.kl_diagnostics(log_ratio.detach(), ratio.detach()),
        }
