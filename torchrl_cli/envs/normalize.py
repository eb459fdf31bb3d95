"""Observation normalization and reward scaling as torch modules.

Their statistics are buffers, so they travel in every ``state_dict`` with the model they feed:
a saved policy normalizes its inputs exactly as it did in training. ``eval()`` freezes them.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from torchrl_cli.envs.spaces import EntryKind, SpaceInfo


def merge_moments(mean, var, count, batch_mean, batch_var, batch_count):
    """Chan et al.'s parallel update: the mean, (population) variance and count of two sets from
    each one's. Plain arithmetic, so that it serves torch tensors and numpy arrays alike (the
    collector's numpy path, the torch modules, and shards collected apart)."""
    delta = batch_mean - mean
    total = count + batch_count
    merged_mean = mean + delta * batch_count / total
    m2 = var * count + batch_var * batch_count + delta * delta * count * batch_count / total
    return merged_mean, m2 / total, total


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of batches (``merge_moments``)."""

    def __init__(self, shape: tuple[int, ...] = (), eps: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        batch = batch.to(torch.float64).reshape(-1, *self.mean.shape)
        b_var, b_mean = torch.var_mean(batch, dim=0, unbiased=False)
        self.update_from_moments(b_mean, b_var, batch.shape[0])

    @torch.no_grad()
    def update_from_moments(self, batch_mean, batch_var, batch_count: int) -> None:
        """Merge a batch's moments in (tensors or arrays on the buffers' device)."""
        merged = merge_moments(self.mean, self.var, self.count, batch_mean, batch_var, batch_count)
        for buffer, value in zip((self.mean, self.var, self.count), merged, strict=True):
            buffer.copy_(torch.as_tensor(value, dtype=torch.float64, device=buffer.device))

    def numpy_update(self) -> Callable[[np.ndarray], None]:
        """``update`` in numpy on views of the (CPU) buffers, for the collector's per-step path
        (a dozen float64 torch ops on a few numbers cost ~30 us; see backends.numpy_actor)."""
        mean, var, count = self.mean.numpy(), self.var.numpy(), self.count.numpy()

        def update(batch: np.ndarray) -> None:
            batch = batch.astype(np.float64).reshape(-1, *mean.shape)
            merged = merge_moments(mean, var, count, batch.mean(axis=0), batch.var(axis=0),
                                   batch.shape[0])
            mean[...], var[...], count[...] = merged

        return update


class StateNormalizer(nn.Module):
    """Maps raw observations to the network's input.

    ``fixed``: rescale Box bounds to [-1, 1] (only where both bounds are finite).
    ``running``: subtract the running mean and divide by the running std, then clip.
    Statistics update in ``train()`` mode only. With neither, uint8 images (frames) pass
    through as uint8 (``dtype``): the rollout stores them 4x smaller and the net scales them;
    any other dtype (integer vectors, uint8 vectors) is cast to float32 here, once. For a Dict
    or Tuple observation (one flat vector, ``envs.encode``) only the elements of its vector
    entries are normalized: images and one-hot entries pass through.
    """

    def __init__(self, state_info: SpaceInfo, *, running: bool, fixed: bool, clip: float):
        super().__init__()
        self.running = running
        self.fixed = fixed
        self.clip = clip
        raw_frames = (
            np.dtype(state_info.dtype) == np.uint8
            and len(state_info.shape) == 3
            and not (running or fixed)
        )
        self.dtype = torch.uint8 if raw_frames else torch.float32  # of the normalized obs
        shape = tuple(state_info.shape)
        low = torch.as_tensor(np.asarray(state_info.low, dtype=np.float32))
        high = torch.as_tensor(np.asarray(state_info.high, dtype=np.float32))
        finite = torch.isfinite(high - low) & (high > low)  # -max..max overflows: unbounded
        self.register_buffer("low", torch.where(finite, low, torch.zeros_like(low)))
        self.register_buffer("span", torch.where(finite, high - low, torch.full_like(low, 2.0)))
        self.register_buffer("shift", torch.where(finite, 1.0, 0.0))
        self.rms = RunningMeanStd(shape)
        # which elements to standardize: all (None), or a structured observation's vectors
        self.register_buffer("mask", None, persistent=False)
        if state_info.structured:
            mask = np.concatenate(
                [np.full(e.size, e.kind == EntryKind.BOX) for e in state_info.entries]
            )
            self.register_buffer("mask", torch.as_tensor(mask), persistent=False)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, counted: torch.Tensor | None = None) -> torch.Tensor:
        """Normalize, after updating the running statistics when in training mode with the
        rows ``counted`` flags (None: every row; a many-agent env's rows that hold an agent)."""
        if self.dtype == torch.uint8:
            return obs
        obs = self._rescale(obs.float())
        if self.running and self.training:
            rows = obs if counted is None else obs[counted]
            if len(rows):
                self.rms.update(rows)
        return self._standardize(obs)

    @torch.no_grad()
    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalize without touching the statistics."""
        if self.dtype == torch.uint8:
            return obs
        return self._standardize(self._rescale(obs.float()))

    def _standardize(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.running:
            return obs
        std = torch.sqrt(self.rms.var + 1e-8).float()
        standard = ((obs - self.rms.mean.float()) / std).clamp(-self.clip, self.clip)
        return standard if self.mask is None else torch.where(self.mask, standard, obs)

    def _rescale(self, obs: torch.Tensor) -> torch.Tensor:
        if self.fixed:
            obs = (obs - self.low) / self.span * 2.0 - self.shift
        return obs


class RewardScaler(nn.Module):
    """Divide rewards by the running std of the discounted return (PPO implementation detail),
    then clip. Keeps one running return per env; ``enabled=False`` passes rewards through.
    Lives on the CPU whatever the training device (rewards arrive from the env in numpy).
    With many agents, the statistics count only the returns of the rows that held an agent
    at the step (``counted``)."""

    def __init__(self, n_envs: int, *, gamma: float, enabled: bool, clip: float):
        super().__init__()
        self.enabled = enabled
        self.gamma = gamma
        self.clip = clip
        self.rms = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(n_envs, dtype=torch.float64))

    def forward(
        self, reward: np.ndarray, done: np.ndarray, counted: np.ndarray | None = None
    ) -> np.ndarray:
        """One vector step's rewards, scaled; the statistics count the rows ``counted`` flags
        (None: all). In numpy, on views of the buffers (which stay on the CPU): it runs once
        per env step, where a dozen torch ops on a few numbers cost ~30 us."""
        if not self.enabled:
            return reward
        return self._stepper()(reward, done, counted)

    def scale_rollout(
        self, rewards: np.ndarray, dones: np.ndarray, counted: np.ndarray | None = None
    ) -> np.ndarray:
        """A rollout's rewards ``[T, N]`` as the models learn from them; the running statistics
        advance step by step, exactly as if ``forward`` had been called during collection
        (``counted``: ``[T, N]``, the rows that held an agent at each step; None: all)."""
        if not self.enabled:
            return rewards
        step = self._stepper()
        steps = [None] * len(rewards) if counted is None else counted
        return np.stack([step(*row) for row in zip(rewards, dones, steps, strict=True)])

    def _stepper(self) -> Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]:
        """``forward`` for one vector step on numpy views of the buffers, built once for a
        rollout's steps."""
        returns, var = self.returns.numpy(), self.rms.var.numpy()
        update, gamma, clip = self.rms.numpy_update(), self.gamma, self.clip

        def step(reward: np.ndarray, done: np.ndarray, counted: np.ndarray | None):
            np.multiply(returns, gamma, out=returns)  # in place: the buffer's view
            np.add(returns, reward, out=returns)
            if counted is None:
                update(returns)
            elif counted.any():  # an absent agent's return is no sample of the returns
                update(returns[counted])
            returns[done] = 0.0
            return (reward / np.sqrt(var + 1e-8)).clip(-clip, clip).astype(np.float32)

        return step
