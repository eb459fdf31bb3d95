"""The torch backend's minibatch step: each model's losses from its ``register_losses`` (a body
they share run once, ``nn.shared.one_forward``), one backward over their sum, each model
stepping its own optimizer. The reference that the numpy
backend's step is checked against; the epochs around it are ``rollout.update.run_epochs``."""

from collections.abc import Mapping

import torch

from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Batch
from torchrl_cli.nn.shared import one_forward, shared_parts


class TorchStepper:
    """``rollout.update.Stepper`` with autograd and the models' own optimizers, for the
    ``models`` of one pass."""

    def __init__(self, models: Mapping[str, BaseModel]):
        self.bodies = shared_parts(models.values())

    def __enter__(self) -> "TorchStepper":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def load(self, batch: Batch) -> Batch:
        return batch

    def sync(self) -> None:
        pass

    def step(self, minibatch: Batch, active: Mapping[str, BaseModel]) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        with one_forward(self.bodies):
            for model in active.values():
                terms.update(model.register_losses(minibatch))
        loss = sum(v for k, v in terms.items() if k.startswith("loss_"))
        for model in active.values():
            model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for name, model in active.items():
            terms[f"grad_norm_{name}"] = model.optimizer_step()
        return {k: v if k.startswith("loss_") else v.detach() for k, v in terms.items()}
