"""One body (``net.shared_body``) or one memory (``memory.shared``) that the policy and the
value both read, run once per input.

The two models stay separate modules with their own heads, losses and optimizers; the body's
parameters belong to the policy's optimizer, and the value's loss reaches them through the
summed backward of a minibatch step. What makes the body shared in cost as well as in weights
is ``one_forward``: inside it, a model that reads the input the other model has just read gets
the same features (and autograd graph) back instead of a second forward. A minibatch step
scores both losses inside one; an acting step chooses the actions and values the observations
inside one. On a Nature CNN that halves an update's convolutions (docs/pixels.md).
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from torchrl_cli.nn.layers import ModuleExtended

T = TypeVar("T")


class OncePerInput:
    """A one-entry memo that answers inside ``one_forward`` only: a call with the very input
    object of the previous call returns the previous output. The caller opens the scope around
    reads of inputs it does not change in between (the parameters cannot change either: no
    optimizer steps inside). Outside it every call computes, and nothing is held."""

    _scoped = False
    _memo: tuple[object, object] | None = None

    def once(self, key: object, compute: Callable[[], T]) -> T:
        """``compute()``, or inside the scope the output of the previous call on ``key``."""
        if not self._scoped:
            return compute()
        if self._memo is not None and self._memo[0] is key:
            return self._memo[1]
        out = compute()
        self._memo = (key, out)
        return out

    def __getstate__(self) -> dict:
        # copies (the guard's snapshot, pickling) carry no scope and no graph along
        return {**super().__getstate__(), "_memo": None, "_scoped": False}


class SharedBody(OncePerInput, ModuleExtended):
    """``body``, run once per input inside ``one_forward``."""

    def __init__(self, body: nn.Module, out_shape: tuple[int, ...]):
        super().__init__()
        self.body = body
        self.out_shape = tuple(out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.once(x, lambda: self.body(x))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.out_shape


def shared_parts(models: Iterable[nn.Module]) -> list[OncePerInput]:
    """The parts of ``models`` that run once per input in ``one_forward`` (shared bodies,
    memories), each once."""
    found = {id(m): m for model in models for m in model.modules() if isinstance(m, OncePerInput)}
    return list(found.values())


@contextmanager
def one_forward(bodies: list[OncePerInput]) -> Iterator[None]:
    """A scope in which each of ``bodies`` runs once per input (see ``SharedBody``)."""
    for body in bodies:
        body._scoped = True
    try:
        yield
    finally:
        for body in bodies:
            body._scoped, body._memo = False, None
