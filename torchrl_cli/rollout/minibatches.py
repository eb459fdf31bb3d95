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
