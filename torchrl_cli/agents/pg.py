"""PGAgent: rollout, advantages, value targets and minibatch updates for any PG model."""

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from torchrl_cli.agents.base import BaseAgent
from torchrl_cli.agents.guard import NonFiniteError
from torchrl_cli.envs.spaces import SpaceKind
from torchrl_cli.models import BaseModel, BasePGModel, ValueModel
from torchrl_cli.models.batch import Batch, Rollout
from torchrl_cli.rollout.actor import RecurrentGreedy
from torchrl_cli.rollout.collector import Collector
from torchrl_cli.rollout.estimators import GAE, FromAdvantage
from torchrl_cli.rollout.minibatches import MinibatchPlan, Sequences, Shuffled
from torchrl_cli.rollout.update import Diagnostics, Refresh, run_epochs
from torchrl_cli.utils import explained_var

if TYPE_CHECKING:  # resolved by run.build, which hands it in
    from torchrl_cli.backends import Backend


class PGAgent(BaseAgent):
    """Policy-gradient agent (after the seed's PGAgent).

    Parameters:
        collector: collects rollouts, its actor (the backend's) acting.
        policy_model: a BasePGModel.
        value_model: a ValueModel, or None (values are then 0: no baseline).
        normalize_advantages: normalize advantages per minibatch.
        recompute_advantages: before each epoch after the first, values, advantages and value
            targets again from the value model as it is then (Tianshou's recompute_advantage);
            the log-probs stay the rollout's.
        advantage: advantage estimator (GAE).
        vtarget: value-target estimator (FromAdvantage).
        backend: where the update's minibatch steps run (``backends.resolve_backend``).
        **kwargs: BaseAgent's parameters.
    """

    def __init__(
        self,
        collector: Collector,
        *,
        policy_model: BasePGModel,
        value_model: ValueModel | None,
        normalize_advantages: bool,
        recompute_advantages: bool,
        advantage: GAE,
        vtarget: FromAdvantage,
        backend: "Backend",
        **kwargs,
    ):
        super().__init__(collector, **kwargs)
        self.policy_model = policy_model
        self.value_model = value_model
        self.normalize_advantages = normalize_advantages
        self.recompute_advantages = recompute_advantages
        self.advantage = advantage
        self.vtarget = vtarget
        self.backend = backend
        self.discrete = policy_model.action_info.kind != SpaceKind.CONTINUOUS
        self._register_model("policy", policy_model)
        if value_model is not None:
            self._register_model("value", value_model)
        self.diagnostics: dict[str, list[float]] = defaultdict(list)  # drained by write_logs
        self._recurrent_greedy: RecurrentGreedy | None = None  # act's state with a memory

    def act(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy env actions for raw (encoded) observations; the most likely legal ones with
        ``action_mask`` (masked envs).

        A policy with a memory carries its state from call to call, one row per env: the
        first call (and the first after ``reset_memory``, or after the number of rows
        changed) starts every row over; ``end_episodes(done)`` starts the rows whose episode
        ended over at their next call (``RecurrentGreedy``)."""
        device = self.collector.device
        mask = None if action_mask is None else torch.as_tensor(action_mask, device=device)
        if self.recurrent:
            greedy = self._recurrent_greedy
            if greedy is None or (greedy.state is not None and len(greedy.state) != len(obs)):
                greedy = self._recurrent_greedy = RecurrentGreedy(
                    self.policy_model,
                    lambda raw: self.normalizer.normalize(torch.as_tensor(raw, device=device)),
                )
            with torch.no_grad():
                actions = greedy(obs, action_mask)
            return self.collector.to_env_action(actions)
        state = self.normalizer.normalize(torch.as_tensor(obs, device=device))
        actions = self.policy_model.select_action(state, deterministic=True, mask=mask)[0]
        return self.collector.to_env_action(actions)

    def end_episodes(self, done: np.ndarray) -> None:
        """``act`` with a memory: the rows whose episode ended start over at the next call."""
        if self._recurrent_greedy is not None:
            self._recurrent_greedy.end_episodes(np.asarray(done, dtype=bool))

    def reset_memory(self) -> None:
        """``act`` with a memory: every row starts over at the next call."""
        self._recurrent_greedy = None

    def greedy_policy(self):
        """``act`` as the actor computes it (in numpy where the run acts in numpy: one forward
        pass per evaluation step without torch's dispatch), made once per evaluation."""
        greedy, to_env = self.collector.actor.greedy(), self.collector.to_env_action

        def act(obs, action_mask=None):
            return to_env(greedy(obs, action_mask))

        if hasattr(greedy, "end_episodes"):  # a memory: reset where episodes end
            act.end_episodes = greedy.end_episodes
        return act

    @property
    def recurrent(self) -> bool:
        """Whether the policy has a memory (the value model then has one too, or none)."""
        return self.policy_model.memory is not None

    def value_fn(self):
        """What the collector computes values with: ``values``, or a value model with a
        memory itself (stepped through each env's sequence)."""
        model = self.value_model
        return model if model is not None and model.memory is not None else self.values

    def values(self, state: torch.Tensor) -> torch.Tensor:
        if self.value_model is None:
            return torch.zeros(state.shape[0], device=state.device)
        return self.value_model(state)

    def step(self) -> None:
        for model in self.models.values():
            model.set_progress(self.progress)
        snapshot = self.guard.snapshot(self) if self.guard.mode == "skip" else None
        rollout = self.collector.collect(self.value_fn())
        problem = self.guard.rollout_problem(rollout, self.collector.env_rewards)
        diagnostics: dict[str, list[float]] = {}
        if problem is None:
            diagnostics = self.learn(rollout)
            problem = self.guard.update_problem(diagnostics, self.models)
        if problem is not None:
            self.non_finite(problem, snapshot)
            return
        for key, values in diagnostics.items():
            self.diagnostics[key].extend(values)
        warning = self.guard.divergence(diagnostics, self.num_iters, self.discrete)
        if warning is not None:
            self.logger.console.print(
                f"[yellow]warning[/yellow] at env step {self.num_steps}: {warning}",
                soft_wrap=True,
            )

    def non_finite(self, problem: str, snapshot: dict | None) -> None:
        """Stop (NonFiniteError) or, with ``guard.mode=skip``, undo this iteration's update."""
        where = f"at env step {self.num_steps}, iteration {self.num_iters + 1}"
        if snapshot is None:
            raise NonFiniteError(f"non-finite {problem} {where}")
        self.guard.restore(self, snapshot)
        self.guard.skipped += 1
        self.logger.console.print(
            f"[yellow]warning[/yellow]: non-finite {problem} {where}; update skipped "
            f"({self.guard.skipped} so far)",
            soft_wrap=True,
        )

    def learn(self, rollout: Rollout) -> dict[str, list[float]]:
        """Advantages, value targets and the update from one rollout; returns its diagnostics."""
        batch = self.batch_of(rollout)
        refresh = None
        if self.recompute_advantages:

            @torch.no_grad()
            def refresh() -> Batch:
                return self.batch_of(self.collector.estimate_values(rollout, self.value_fn()))

        diagnostics = self.update(batch, refresh)
        diagnostics["explained_variance"] = [explained_var(batch.returns, batch.values)]
        return diagnostics

    def batch_of(self, rollout: Rollout) -> Batch:
        """The flat training batch of ``rollout``: its advantages and value targets added."""
        advantages = self.advantage(rollout)
        returns = self.vtarget(advantages, rollout.values)
        if rollout.states is not None:
            return self.sequences_of(rollout, advantages, returns)
        batch = Batch(
            obs=rollout.obs.flatten(0, 1),
            actions=rollout.actions.flatten(0, 1),
            log_probs=rollout.log_probs.flatten(),
            values=rollout.values.flatten(),
            advantages=advantages.flatten(),
            returns=returns.flatten(),
            masks=None if rollout.masks is None else rollout.masks.flatten(0, 1),
        )
        if rollout.valid is not None and not bool(rollout.valid.all()):
            # many agents: rows that held no agent leave the batch, so that every loss and the
            # advantage normalization reduce over real agent steps only, never over zeros
            # (the advantages above are unaffected: an agent's row is done at its last step)
            batch = batch.index(rollout.valid.flatten().nonzero().squeeze(1))
        return batch

    @staticmethod
    def sequences_of(rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor) -> Batch:
        """``batch_of`` for models with a memory: each env's rollout one whole sequence, env
        after env (``[T, N]`` to rows ``N * T``, env-major), with its episode starts and the
        states before each step."""

        def rows(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(0, 1).flatten(0, 1)

        return Batch(
            obs=rows(rollout.obs),
            actions=rows(rollout.actions),
            log_probs=rows(rollout.log_probs),
            values=rows(rollout.values),
            advantages=rows(advantages),
            returns=rows(returns),
            masks=None if rollout.masks is None else rows(rollout.masks),
            first=rows(rollout.first),
            states={k: rows(v) for k, v in rollout.states.items()},
            seq_len=rollout.obs.shape[0],
        )

    def plan(self, num_mini_batches: int, batch: Batch) -> MinibatchPlan:
        """Shuffled samples; whole env sequences for models with a memory."""
        if batch.seq_len:
            return Sequences(num_mini_batches, batch.seq_len)
        return Shuffled(num_mini_batches)

    def update(self, batch: Batch, refresh: Refresh | None = None) -> Diagnostics:
        """Train the models; those with the same epochs and minibatches share one pass (the
        default: the agent's ``num_epochs``/``num_mini_batches``), summing their losses into one
        backward, each stepping its own optimizer. ``run_epochs`` drives each pass with the
        backend's minibatch step; ``refresh`` gives each pass's epochs after the first their
        batch (``recompute_advantages``)."""
        groups: dict[tuple[int, int], dict[str, BaseModel]] = defaultdict(dict)
        for name, model in self.models.items():
            groups[(model.num_epochs, model.num_mini_batches)][name] = model
        diagnostics: Diagnostics = defaultdict(list)
        for (num_epochs, num_mini_batches), models in groups.items():
            with self.backend.stepper(models) as stepper:
                fitted = run_epochs(
                    models,
                    batch,
                    num_epochs,
                    self.plan(num_mini_batches, batch),
                    stepper,
                    normalize_advantages=self.normalize_advantages,
                    refresh=refresh,
                )
            for key, values in fitted.items():
                diagnostics[key].extend(values)
        for model in self.models.values():
            for key, value in model.on_batch_end(batch).items():
                diagnostics[key].append(float(value))
        return diagnostics

    def write_logs(self) -> None:
        for key, values in self.diagnostics.items():
            self.logger.add_log(f"losses/{key}", float(np.mean(values)), 4)
        self.diagnostics.clear()
        self.logger.add_log("charts/learning_rate", self.policy_model.lr, 6)
        if self.guard.skipped:
            self.logger.add_log("charts/skipped_updates", self.guard.skipped, 0)
        if self.value_model is not None:
            self.logger.add_tf_only_log("charts/learning_rate_value", self.value_model.lr, 6)
        rollout = self.collector.buffers
        self.logger.add_histogram("rollout/actions", rollout.actions)
        self.logger.add_histogram("rollout/values", rollout.values)
        for name, model in self.models.items():
            for key, param in model.named_parameters():
                self.logger.add_histogram(f"params/{name}/{key}", param)
        super().write_logs()
