"""The update driver: epochs x minibatches x advantage normalization x early stop x recomputed
advantages, written once for every backend. A backend supplies one minibatch step (a
``Stepper``): the torch backend's autograd and optimizers, or the numpy backend's hand-derived
gradients and Adam on flat arrays."""

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch

from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Array, Batch
from torchrl_cli.rollout.minibatches import MinibatchPlan

#: what an update reports: each diagnostic's value at every minibatch step, as floats
Diagnostics = dict[str, list[float]]
#: re-evaluates a batch with the models as they are now (``agent.recompute_advantages``)
Refresh = Callable[[], Batch]


class Stepper(Protocol):
    """One backend's minibatch step for the models it was opened on (``Backend.stepper``, a
    context manager: the numpy backend copies parameters and Adam's moments into flat arrays
    on entry and writes them back on exit)."""

    def load(self, batch: Batch) -> Batch:
        """``batch`` in the stepper's own kind of array (numpy: arrays viewing the tensors)."""
        ...

    def step(self, minibatch: Batch, active: Mapping[str, BaseModel]) -> dict[str, Array | float]:
        """One gradient step of each ``active`` model on ``minibatch``; returns its terms and
        diagnostics (``loss_*`` terms and the models' other keys, ``grad_norm_<name>``)."""
        ...

    def sync(self) -> None:
        """Make the torch modules current (numpy: write the flat arrays back)."""
        ...


def normalize(values: Array, eps: float = 1e-8) -> Array:
    """Subtract the mean, divide by the (unbiased) standard deviation: torch or numpy."""
    std = values.std(ddof=1) if isinstance(values, np.ndarray) else values.std()
    return (values - values.mean()) / (std + eps)


def run_epochs(
    models: Mapping[str, BaseModel],
    batch: Batch,
    num_epochs: int,
    plan: MinibatchPlan,
    stepper: Stepper,
    *,
    normalize_advantages: bool,
    refresh: Refresh | None = None,
) -> Diagnostics:
    """``num_epochs`` passes over ``batch`` in ``plan``'s minibatches, advantages normalized
    per minibatch (once per batch when a minibatch is the whole batch); a model whose
    ``stop_early(terms)`` is true (a KL limit) sits out the rest while the others go on.
    ``refresh``: the batch each epoch after the first trains on (recomputed advantages), made
    after ``stepper.sync()``. ``models`` by name (the name tags their gradient norms)."""
    whole = plan.whole(len(batch))

    def prepared(batch: Batch) -> Batch:
        data = stepper.load(batch)
        if whole and normalize_advantages:
            data = replace(data, advantages=normalize(data.advantages))
        return data

    data = prepared(batch)
    # kept as given (0-d tensors for torch) until the end: a GPU run syncs once per key
    seen: dict[str, list] = defaultdict(list)
    active = dict(models)
    for epoch in range(num_epochs):
        if not active:
            break
        if refresh is not None and epoch > 0:
            stepper.sync()
            data = prepared(refresh())
        for idx in plan.minibatches(len(batch), batch.obs.device):
            if not active:
                break
            minibatch = data
            if idx is not None:
                minibatch = data.index(idx)
                if normalize_advantages:
                    minibatch.advantages = normalize(minibatch.advantages)
            terms = stepper.step(minibatch, active)
            for key, value in terms.items():
                if not key.startswith("loss_"):
                    seen[key].append(value)
            active = {name: m for name, m in active.items() if not m.stop_early(terms)}
    return {key: as_floats(values) for key, values in seen.items()}


def as_floats(values: list) -> list[float]:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values).float().tolist()
    return [float(v) for v in values]
