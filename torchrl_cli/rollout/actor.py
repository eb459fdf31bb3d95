"""The actor seam: what the collector calls at each vector step. A backend supplies one
(``TorchActor`` here, ``backends.numpy_actor.NumpyActor``); it carries the observation
normalizer and the policy, and may carry a recurrent state from step to step."""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from torchrl_cli.envs import StateNormalizer
from torchrl_cli.models import BaseModel, BasePGModel
from torchrl_cli.models.batch import ActOut, Array, State
from torchrl_cli.nn.shared import one_forward, shared_parts


def acting_rng(seed: int) -> np.random.Generator:
    """The acting stream of a run seeded with ``seed``, independent of its env seeds'."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


class Actor(Protocol):
    """Normalizer + policy, acting one vector step at a time.

    The collector calls ``begin_rollout`` once per rollout, ``observe`` on every observation
    the env gives (normalized once, on arrival: the rollout stores what the policy saw), and
    ``act`` at each step with the episode starts (``first``: rows whose observation begins an
    episode, where a recurrent state starts over), the legal actions and the step index."""

    normalizer: StateNormalizer
    rng: np.random.Generator  # the sampling stream of an actor that draws its own (checkpointed)

    def initial_state(self, n: int) -> State:
        """The state of ``n`` fresh rows (None: feed-forward)."""
        ...

    def begin_rollout(self, n: int) -> None:
        """Called before a rollout's first step over ``n`` env rows."""
        ...

    def observe(self, obs: np.ndarray, counted: np.ndarray | None = None) -> Array:
        """Raw observations to network inputs, counted in the statistics while training: the
        rows ``counted`` flags (None: all; a many-agent env's rows that hold an agent)."""
        ...

    def act(
        self, obs: Array, state: State, first: np.ndarray, mask: torch.Tensor | None, t: int
    ) -> ActOut:
        """Sample actions for ``observe``'s output at step ``t`` of the rollout."""
        ...

    def normalize_final(self, obs: np.ndarray) -> torch.Tensor:
        """A cut episode's final observations as network inputs (not counted): the truncation
        bootstrap's input."""
        ...

    def greedy(self) -> Callable[..., Array]:
        """``(raw obs, action_mask=None) -> greedy network actions`` (deterministic
        evaluation; the most likely legal ones under a mask)."""
        ...


class TorchActor:
    """The policy's own ``select_action`` and the normalizer module: the reference actor. It
    samples from torch's generator; ``rng`` is held so that a checkpoint resumes on either
    backend. ``value``: a feed-forward value model that reads the policy's body
    (``net.shared_body``), valued at each step from the same forward as the actions."""

    def __init__(
        self,
        policy: BasePGModel,
        normalizer: StateNormalizer,
        rng: np.random.Generator,
        device: torch.device,
        value: BaseModel | None = None,
    ):
        self.policy, self.normalizer, self.rng, self.device = policy, normalizer, rng, device
        self.value = value
        self.bodies = shared_parts([policy]) if value is not None else []

    def initial_state(self, n: int) -> State:
        """None, or with a memory ``{"policy": zeros}`` (the collector adds the value's)."""
        if self.policy.memory is None:
            return None
        return {"policy": self.policy.initial_state(n)}

    def begin_rollout(self, n: int) -> None:
        pass

    def observe(self, obs: np.ndarray, counted: np.ndarray | None = None) -> torch.Tensor:
        if counted is not None:
            counted = torch.as_tensor(counted, device=self.device)
        return self.normalizer(torch.as_tensor(obs, device=self.device), counted)

    def act(
        self,
        obs: torch.Tensor,
        state: State,
        first: np.ndarray,
        mask: torch.Tensor | None,
        t: int,
    ) -> ActOut:
        sde = self.policy.sde
        if sde is not None and sde.due(t):  # gSDE: new noise matrices, one per env
            sde.resample(len(obs))
        if state is None and self.value is not None:
            with one_forward(self.bodies):
                actions, log_probs = self.policy.select_action(obs, mask=mask)
                return ActOut(actions, log_probs, None, self.value(obs))
        if state is None:
            actions, log_probs = self.policy.select_action(obs, mask=mask)
            return ActOut(actions, log_probs)
        starts = torch.as_tensor(first, device=self.device)
        actions, log_probs, after = self.policy.select_action_step(
            obs, state["policy"], starts, mask=mask
        )
        return ActOut(actions, log_probs, {**state, "policy": after})

    def normalize_final(self, obs: np.ndarray) -> torch.Tensor:
        return self.normalizer.normalize(torch.as_tensor(obs, device=self.device))

    def greedy(self) -> Callable[..., torch.Tensor]:
        if self.policy.memory is not None:
            return RecurrentGreedy(self.policy, self.normalize_final)

        def act(obs: np.ndarray, action_mask: np.ndarray | None = None) -> torch.Tensor:
            mask = None if action_mask is None else torch.as_tensor(action_mask, device=self.device)
            state = self.normalize_final(obs)
            return self.policy.select_action(state, deterministic=True, mask=mask)[0]

        return act


class RecurrentGreedy:
    """Greedy actions of a policy with a memory, its state carried from call to call: every
    row starts over at the first call and after ``end_episodes`` flags it (what
    ``agents.evaluation.run_episodes`` calls after each step)."""

    def __init__(self, policy: BasePGModel, normalize: Callable[[np.ndarray], torch.Tensor]):
        self.policy, self.normalize = policy, normalize
        self.state: torch.Tensor | None = None
        self.first: torch.Tensor | None = None

    def __call__(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> torch.Tensor:
        x = self.normalize(obs)
        if self.state is None:
            self.state = self.policy.initial_state(len(x))
            self.first = torch.ones(len(x), dtype=torch.bool, device=x.device)
        mask = None if action_mask is None else torch.as_tensor(action_mask, device=x.device)
        actions, _, self.state = self.policy.select_action_step(
            x, self.state, self.first, deterministic=True, mask=mask
        )
        self.first = torch.zeros_like(self.first)
        return actions

    def end_episodes(self, done: np.ndarray) -> None:
        """The rows whose episode ended at the last step: their next call starts over."""
        if self.first is not None:
            self.first = torch.as_tensor(done, device=self.first.device)
