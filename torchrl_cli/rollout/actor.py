"""The actor seam: what the collector calls at each vector step. A backend supplies one
(``TorchActor`` here, ``backends.numpy_actor.NumpyActor``); it carries the observation
normalizer and the policy, and may carry a recurrent state from step to step."""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from torchrl_cli.envs import StateNormalizer
from torchrl_cli.models import BasePGModel
from torchrl_cli.models.batch import ActOut, Array, State


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

    def observe(self, obs: np.ndarray) -> Array:
        """Raw observations to network inputs, counted in the statistics while training."""
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
    backend."""

    def __init__(
        self,
        policy: BasePGModel,
        normalizer: StateNormalizer,
        rng: np.random.Generator,
        device: torch.device,
    ):
        self.policy, self.normalizer, self.rng, self.device = policy, normalizer, rng, device

    def initial_state(self, n: int) -> State:
        return None

    def begin_rollout(self, n: int) -> None:
        pass

    def observe(self, obs: np.ndarray) -> torch.Tensor:
        return self.normalizer(torch.as_tensor(obs, device=self.device))

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
        actions, log_probs = self.policy.select_action(obs, mask=mask)
        return ActOut(actions, log_probs)

    def normalize_final(self, obs: np.ndarray) -> torch.Tensor:
        return self.normalizer.normalize(torch.as_tensor(obs, device=self.device))

    def greedy(self) -> Callable[..., torch.Tensor]:
        def act(obs: np.ndarray, action_mask: np.ndarray | None = None) -> torch.Tensor:
            mask = None if action_mask is None else torch.as_tensor(action_mask, device=self.device)
            state = self.normalize_final(obs)
            return self.policy.select_action(state, deterministic=True, mask=mask)[0]

        return act
