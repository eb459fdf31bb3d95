"""The torch backend's acting: the policy's own ``select_action``, step by step (the reference
for the numpy twin in ``numpy_actor``)."""

from typing import TYPE_CHECKING

import numpy as np
import torch

from torchrl_cli.models import BasePGModel
from torchrl_cli.models.batch import Truncation

if TYPE_CHECKING:  # the collector that calls steps()
    from torchrl_cli.agents.batcher import Batcher


class TorchActing:
    """The policy acting in torch (``BasePGModel.select_action``): the reference path."""

    def __init__(self, policy: BasePGModel):
        self.policy = policy

    def steps(self, batcher: "Batcher") -> list[Truncation]:
        buf, truncations = batcher.buffers, []
        normalizer = batcher.state_normalizer
        sde = self.policy.sde
        for t in range(batcher.n_steps):
            if sde is not None and sde.due(t):  # gSDE: new noise matrices, one per env
                sde.resample(batcher.env.n_envs)
            obs = batcher.obs
            actions, log_probs = self.policy.select_action(obs, mask=batcher.mask)
            if buf.masks is not None:  # the update scores the actions under the same mask
                buf.masks[t] = batcher.mask
            buf.obs[t] = obs
            buf.actions[t] = actions
            buf.log_probs[t] = log_probs
            step = batcher.env_step(t, actions)
            if step.truncated.any():
                # bootstrap from V(final obs), normalized but not counted in the statistics
                idx = np.flatnonzero(step.truncated)
                final = torch.as_tensor(step.final_obs[idx], device=batcher.device)
                truncations.append(Truncation(t, idx, normalizer.normalize(final)))
            batcher.obs = batcher.normalize(step.obs)
        return truncations
