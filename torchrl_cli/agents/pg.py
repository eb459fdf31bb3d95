"""PGAgent: rollout, advantages, value targets and minibatch updates for any PG model."""

from collections import defaultdict
from dataclasses import replace

import numpy as np
import torch

from torchrl_cli.agents.base import BaseAgent
from torchrl_cli.batcher import Batch, Batcher
from torchrl_cli.estimators import GAE, FromAdvantage
from torchrl_cli.models import BaseModel, BasePGModel, ValueModel
from torchrl_cli.models.numpy_update import numpy_fit
from torchrl_cli.utils import explained_var, normalize


class PGAgent(BaseAgent):
    """Policy-gradient agent (after the seed's PGAgent).

    Parameters:
        batcher: collects rollouts.
        policy_model: a BasePGModel.
        value_model: a ValueModel, or None (values are then 0: no baseline).
        normalize_advantages: normalize advantages per minibatch.
        advantage: advantage estimator (GAE).
        vtarget: value-target estimator (FromAdvantage).
        **kwargs: BaseAgent's parameters.
    """

    def __init__(
        self,
        batcher: Batcher,
        *,
        policy_model: BasePGModel,
        value_model: ValueModel | None,
        normalize_advantages: bool,
        advantage: GAE,
        vtarget: FromAdvantage,
        **kwargs,
    ):
        super().__init__(batcher, **kwargs)
        self.policy_model = policy_model
        self.value_model = value_model
        self.normalize_advantages = normalize_advantages
        self.advantage = advantage
        self.vtarget = vtarget
        self._register_model("policy", policy_model)
        if value_model is not None:
            self._register_model("value", value_model)
        self.diagnostics: dict[str, list[torch.Tensor]] = defaultdict(list)

    def normalize_state(self, obs: np.ndarray) -> torch.Tensor:
        return self.batcher.state_normalizer.normalize(
            torch.as_tensor(obs, device=self.batcher.device)
        )

    def select_action(self, state: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.policy_model.select_action(state, deterministic)[0]

    def values(self, state: torch.Tensor) -> torch.Tensor:
        if self.value_model is None:
            return torch.zeros(state.shape[0], device=state.device)
        return self.value_model(state)

    def step(self) -> None:
        for model in self.models.values():
            model.set_progress(self.progress)
        rollout = self.batcher.collect(self.policy_model, self.values)
        advantages = self.advantage(
            rollout.rewards,
            rollout.values,
            rollout.terminated,
            rollout.truncated,
            rollout.final_values,
            rollout.last_values,
        )
        returns = self.vtarget(advantages, rollout.values)
        batch = Batch(
            obs=rollout.obs.flatten(0, 1),
            actions=rollout.actions.flatten(0, 1),
            log_probs=rollout.log_probs.flatten(),
            values=rollout.values.flatten(),
            advantages=advantages.flatten(),
            returns=returns.flatten(),
        )
        self.update(batch)
        self.diagnostics["explained_variance"].append(
            torch.tensor(explained_var(batch.returns, batch.values))
        )

    def update(self, batch: Batch) -> None:
        """Train the models; those with the same epochs and minibatches share one pass, summing
        their losses into one backward (each steps its own optimizer). PPO-clip with plain MLPs
        on the CPU trains in numpy (``models.numpy_update``), anything else in torch."""
        groups: dict[tuple[int, int], dict[str, BaseModel]] = defaultdict(dict)
        for name, model in self.models.items():
            groups[(model.num_epochs, model.num_mini_batches)][name] = model
        for (num_epochs, num_mini_batches), models in groups.items():
            args = batch, num_epochs, num_mini_batches
            if not numpy_fit(models, *args, self.normalize_advantages, self.diagnostics):
                self.fit(list(models.values()), *args)
        for model in self.models.values():
            for key, value in model.on_batch_end(batch).items():
                self.diagnostics[key].append(value)

    def fit(
        self, models: list[BaseModel], batch: Batch, num_epochs: int, num_mini_batches: int
    ) -> None:
        """``num_epochs`` passes over ``batch`` in shuffled minibatches; a model that asks to
        stop early (PPO-adaptive's KL limit) sits out the rest while the others go on."""
        names = {id(model): name for name, model in self.models.items()}
        size = len(batch) // num_mini_batches
        # one minibatch of everything: the losses are means, so a shuffle would not change them;
        # skip it and the gather, and normalize the advantages once instead of every epoch
        whole = size == len(batch)
        if whole and self.normalize_advantages:
            batch = replace(batch, advantages=normalize(batch.advantages))
        active = list(models)
        for _ in range(num_epochs):
            order = None if whole else torch.randperm(len(batch), device=batch.obs.device)
            for start in range(0, size * num_mini_batches, size):
                if not active:
                    return
                if whole:
                    minibatch = batch
                else:
                    keys = {key for model in active for key in model.batch_keys}
                    minibatch = batch.index(order[start : start + size], keys)
                    if self.normalize_advantages and minibatch.advantages is not None:
                        minibatch.advantages = normalize(minibatch.advantages)
                terms: dict[str, torch.Tensor] = {}
                for model in active:
                    terms.update(model.register_losses(minibatch))
                loss = sum(v for k, v in terms.items() if k.startswith("loss_"))
                for model in active:
                    model.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for model in active:
                    terms[f"grad_norm_{names[id(model)]}"] = model.optimizer_step()
                for key, value in terms.items():
                    if not key.startswith("loss_"):
                        self.diagnostics[key].append(value.detach())
                active = [model for model in active if not model.stop_early(terms)]

    def write_logs(self) -> None:
        for key, values in self.diagnostics.items():
            # floats from the numpy update; 0-d tensors from the torch one, stacked so that a
            # GPU run syncs once per key, not once per minibatch
            if isinstance(values[0], torch.Tensor):
                mean = torch.stack(values).float().mean().item()
            else:
                mean = float(np.mean(values))
            self.logger.add_log(f"losses/{key}", mean, 4)
        self.diagnostics.clear()
        self.logger.add_log("charts/learning_rate", self.policy_model.lr, 6)
        if self.value_model is not None:
            self.logger.add_tf_only_log("charts/learning_rate_value", self.value_model.lr, 6)
        rollout = self.batcher.buffers
        self.logger.add_histogram("rollout/actions", rollout.actions)
        self.logger.add_histogram("rollout/values", rollout.values)
        for name, model in self.models.items():
            for key, param in model.named_parameters():
                self.logger.add_histogram(f"params/{name}/{key}", param)
        super().write_logs()
