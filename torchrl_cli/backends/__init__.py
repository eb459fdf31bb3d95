"""Where a run acts and updates: ``agent.backend`` = ``auto | torch | numpy``.

A backend supplies the two seams of the loop, never a loop: an actor for the collector
(``rollout.actor.Actor``) and a minibatch step for the update driver (``rollout.update.Stepper``).
``torch`` is the reference: the models' own ``select_action`` and ``register_losses`` with
autograd (``rollout.actor.TorchActor``, ``torch_step``). ``numpy`` is a measured fast path for
small nets on the CPU, where eager PyTorch spends its time dispatching ops rather than
computing: the policy's MLP, sampling and normalization in numpy while collecting
(``numpy_actor``), and PPO-clip's and the value model's minibatch steps with hand-derived
gradients and Adam (``numpy_step``), checked against autograd and torch.optim.Adam in the tests.
``auto`` uses numpy for each part that it can serve and torch for the rest, and says why.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from torchrl_cli.backends.numpy_actor import NumpyActor, acting_unfit
from torchrl_cli.backends.numpy_step import NumpyStepper, update_unfit
from torchrl_cli.backends.torch_step import TorchStepper
from torchrl_cli.config.schema import BACKENDS
from torchrl_cli.envs import StateNormalizer
from torchrl_cli.errors import ConfigError
from torchrl_cli.models import BaseModel, BasePGModel
from torchrl_cli.rollout.actor import Actor, TorchActor


@dataclass(frozen=True)
class Backend:
    """The resolved choice: ``acting`` and each model's ``updates`` are ``torch`` or ``numpy``;
    ``reasons`` says why a part that ``auto`` could not serve in numpy runs in torch."""

    requested: str
    acting: str
    updates: dict[str, str]
    reasons: dict[str, str] = field(default_factory=dict)

    def actor(
        self,
        policy: BasePGModel,
        normalizer: StateNormalizer,
        rng: np.random.Generator,
        device: torch.device,
        value: BaseModel | None = None,
    ) -> Actor:
        """The actor of ``policy`` behind ``normalizer``, sampling from ``rng`` in numpy;
        ``value``: one that shares the policy's body, valued while acting (torch)."""
        if self.acting == "numpy":
            return NumpyActor(policy, normalizer, rng)
        return TorchActor(policy, normalizer, rng, device, value)

    def stepper(self, models: Mapping[str, BaseModel]) -> NumpyStepper | TorchStepper:
        """The minibatch step of ``models`` (a pass they share), a context manager: numpy when
        every one of them trains in numpy, else torch."""
        if all(self.updates[name] == "numpy" for name in models):
            return NumpyStepper(models)
        return TorchStepper(models)

    def describe(self) -> str:
        """One line for the start banner: which backend acts, which updates, and why."""
        if self.requested != "auto":
            return f"backend {self.requested} (acting and update)"
        acting_why = self.reasons["acting"] if self.acting == "torch" else None
        acting = "acting numpy" if acting_why is None else "acting torch"
        kinds = set(self.updates.values())
        if kinds == {"numpy"}:
            update, why = "update numpy", None
        else:
            why = "; ".join(  # once each (a memory is both models' reason)
                dict.fromkeys(self.reasons[n] for n, k in self.updates.items() if k == "torch")
            )
            on_numpy = [name for name, k in self.updates.items() if k == "numpy"]
            update = "update torch"
            if on_numpy:
                update = f"update numpy for {', '.join(on_numpy)}, torch"
        if acting_why is not None and acting_why != why:  # a reason both share: once, last
            acting += f" ({acting_why})"
        if why is not None:
            update += f" ({why})"
        return f"backend auto: {acting}, {update}"


def resolve_backend(
    requested: str,
    policy: BasePGModel,
    models: dict[str, BaseModel],
    normalizer: StateNormalizer,
) -> Backend:
    """The backend ``agent.backend=requested`` gives these models; ``numpy`` on a run it cannot
    serve is a ConfigError naming why."""
    if requested not in BACKENDS:
        raise ConfigError(f"agent.backend={requested} must be one of: {', '.join(BACKENDS)}")
    if requested == "torch":
        return Backend("torch", "torch", dict.fromkeys(models, "torch"))
    reasons = {"acting": acting_unfit(policy, normalizer)}
    reasons |= {name: update_unfit(model) for name, model in models.items()}
    if requested == "numpy":
        reason = next((r for r in reasons.values() if r is not None), None)
        if reason is not None:
            raise ConfigError(
                f"agent.backend=numpy cannot serve this run: {reason}; use agent.backend=auto "
                "(numpy where it can, torch for the rest) or agent.backend=torch"
            )
    acting = "torch" if reasons["acting"] else "numpy"
    updates = {name: "torch" if reasons[name] else "numpy" for name in models}
    # models with the same epochs and minibatches train in one pass: torch if any one must
    for name, model in models.items():
        partners = [
            other
            for other, m in models.items()
            if (m.num_epochs, m.num_mini_batches) == (model.num_epochs, model.num_mini_batches)
            and updates[other] == "torch"
            and reasons[other] is not None
        ]
        if updates[name] == "numpy" and partners:
            updates[name] = "torch"
            reasons[name] = f"{name} trains in one pass with {partners[0]}"
    return Backend(requested, acting, updates, {k: v for k, v in reasons.items() if v})
