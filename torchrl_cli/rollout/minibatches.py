"""Minibatch plans: which samples of a batch each minibatch step of an epoch trains on."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch


class MinibatchPlan(Protocol):
    """The minibatches of one epoch over ``size`` samples: index tensors, or None for the
    whole batch in its own order."""

    def minibatches(self, size: int, device: torch.device) -> Iterator[torch.Tensor | None]: ...

    def whole(self, size: int) -> bool:
        """Whether every minibatch is the whole batch."""
        ...


@dataclass(frozen=True)
class Shuffled:
    """``num_mini_batches`` equal minibatches of a new permutation each epoch (a remainder of
    ``size % num_mini_batches`` samples sits the epoch out). One minibatch of everything is
    not shuffled: the losses are means, so the order would not change them."""

    num_mini_batches: int

    def whole(self, size: int) -> bool:
        return size // self.num_mini_batches == size

    def minibatches(self, size: int, device: torch.device) -> Iterator[torch.Tensor | None]:
        if self.whole(size):
            yield None
            return
        step = size // self.num_mini_batches
        order = torch.randperm(size, device=device)
        for start in range(0, step * self.num_mini_batches, step):
            yield order[start : start + step]


@dataclass(frozen=True)
class Sequences:
    """Whole env sequences per minibatch, for models with a memory: the batch's rows are
    ``size // seq_len`` sequences of ``seq_len`` steps, one after another (each env's rollout,
    in time order); each epoch shuffles the sequences and splits them into
    ``num_mini_batches`` equal groups (a remainder of sequences sits the epoch out), each
    minibatch holding its sequences' rows in order (CleanRL's and rsl_rl's recurrent PPO:
    no padding, so every loss term is the plain mean over real steps)."""

    num_mini_batches: int
    seq_len: int

    def whole(self, size: int) -> bool:
        return self.num_mini_batches == 1

    def minibatches(self, size: int, device: torch.device) -> Iterator[torch.Tensor | None]:
        if self.whole(size):
            yield None
            return
        count = size // self.seq_len
        per = count // self.num_mini_batches
        order = torch.randperm(count, device=device)
        steps = torch.arange(self.seq_len, device=device)
        for start in range(0, per * self.num_mini_batches, per):
            envs = order[start : start + per]
            yield (envs.unsqueeze(1) * self.seq_len + steps).flatten()
