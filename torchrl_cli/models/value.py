"""ValueModel: regression of V(s) onto the value targets."""

import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Batch
from torchrl_cli.nn import FlattenLinear


class ValueModel(BaseModel):
    """State-value function trained by squared error (after the seed's ValueModel).

    Parameters:
        clip_range: when set, the new prediction is clipped to within ``clip_range`` of the
            rollout-time prediction and the larger of the two squared errors is used
            (value clipping, as in OpenAI baselines' PPO2).
        **kwargs: BaseModel's parameters.
    """


    def __init__(self, net: nn.Module, *, clip_range: float | None, **kwargs):
        super().__init__(net, **kwargs)
        self.clip_range = clip_range

    @staticmethod
    def output_layer(input_shape: tuple[int, ...], action_info: SpaceInfo) -> nn.Module:
        return FlattenLinear(input_shape, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return super().forward(obs).squeeze(-1)

    def head(self, latent: torch.Tensor) -> torch.Tensor:
        return self.out(latent).squeeze(-1)

    def register_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        values = self.over(batch)
        loss = (values - batch.returns).square()
        if self.clip_range is not None:
            clipped = batch.values + (values - batch.values).clamp(
                -self.clip_range, self.clip_range
            )
            loss = torch.maximum(loss, (clipped - batch.returns).square())
        loss = 0.5 * loss.mean()
        return {"loss_value": self.loss_coef * loss, "value_loss": loss.detach()}
