"""The torch backend's update: epochs of shuffled minibatches, each model's losses from its
``register_losses``, one backward over their sum, each model stepping its own optimizer.
This is the reference implementation; the numpy backend's twin is checked against it."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import torch

from torchrl_cli.models.base import BaseModel
from torchrl_cli.models.batch import Batch
from torchrl_cli.utils import normalize

#: what an update reports: each diagnostic's value at every minibatch step, as floats
Diagnostics = dict[str, list[float]]
#: re-evaluates a batch with the models as they are now (``agent.recompute_advantages``)
Refresh = Callable[[], Batch]
#: an update: (models by name, batch, num_epochs, num_mini_batches, normalize_advantages,
#: refresh: None, or called for a new batch before each epoch after the first)
Fit = Callable[[dict[str, BaseModel], Batch, int, int, bool, Refresh | None], Diagnostics]


def torch_fit(
    models: dict[str, BaseModel],
    batch: Batch,
    num_epochs: int,
    num_mini_batches: int,
    normalize_advantages: bool,
    refresh: Refresh | None = None,
) -> Diagnostics:
    """``num_epochs`` passes over ``batch`` in shuffled minibatches (advantages normalized per
    minibatch); a model that asks to stop early (PPO-adaptive's KL limit) sits out the rest
    while the others go on. ``models`` by name (the name tags their gradient norms).
    ``refresh``: the batch each epoch after the first trains on (recomputed advantages)."""
    size = len(batch) // num_mini_batches
    # one minibatch of everything: the losses are means, so a shuffle would not change them;
    # skip it and the gather, and normalize the advantages once instead of every epoch
    whole = size == len(batch)

    def prepared(batch: Batch) -> Batch:
        if whole and normalize_advantages:
            return replace(batch, advantages=normalize(batch.advantages))
        return batch

    batch = prepared(batch)
    # 0-d tensors until the end, stacked per key: a GPU run syncs once per key, not per step
    terms_seen: dict[str, list[torch.Tensor]] = defaultdict(list)
    active = dict(models)
    for epoch in range(num_epochs):
        if not active:
            break
        if refresh is not None and epoch > 0:
            batch = prepared(refresh())
        order = None if whole else torch.randperm(len(batch), device=batch.obs.device)
        for start in range(0, size * num_mini_batches, size):
            if not active:
                break
            minibatch = batch
            if not whole:
                minibatch = batch.index(order[start : start + size])
                if normalize_advantages:
                    minibatch.advantages = normalize(minibatch.advantages)
            terms: dict[str, torch.Tensor] = {}
            for model in active.values():
                terms.update(model.register_losses(minibatch))
            loss = sum(v for k, v in terms.items() if k.startswith("loss_"))
            for model in active.values():
                model.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for name, model in active.items():
                terms[f"grad_norm_{name}"] = model.optimizer_step()
            for key, value in terms.items():
                if not key.startswith("loss_"):
                    terms_seen[key].append(value.detach())
            active = {name: m for name, m in active.items() if not m.stop_early(terms)}
    return {key: torch.stack(values).float().tolist() for key, values in terms_seen.items()}
