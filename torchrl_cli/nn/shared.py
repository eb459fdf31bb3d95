"""One body that the policy and the value both read (``net.shared_body``), run once per input.

The two models stay separate modules with their own heads, losses and optimizers; the body's
parameters belong to the policy's optimizer, and the value's loss reaches them through the
summed backward of a minibatch step. What makes the body shared in cost as well as in weights
is ``one_forward``: inside it, a model that reads the input the other model has just read gets
the same features (and autograd graph) back instead of a second forward. A minibatch step
scores both losses inside one; an acting step chooses the actions and values the observations
inside one. On a Nature CNN that halves an update's convolutions (docs/pixels.md).
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from torchrl_cli.nn.layers import ModuleExtended


class SharedBody(ModuleExtended):
    """``body``, with a one-entry memo that answers inside ``one_forward`` only.

    Inside the scope, a call with the very input object of the previous call returns the
    previous output: the caller opens the scope around reads of inputs it does not change
    in between (the parameters cannot change either: no optimizer steps inside). Outside it
    every call computes, and nothing is held.
    """

    def __init__(self, body: nn.Module, out_shape: tuple[int, ...]):
        super().__init__()
        self.body = body
        self.out_shape = tuple(out_shape)
        self._scoped = False
        self._memo: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._scoped:
            return self.body(x)
        if self._memo is not None and self._memo[0] is x:
            return self._memo[1]
        out = self.body(x)
        self._memo = (x, out)
        return out

    def __getstate__(self) -> dict:
        # copies (the guard's snapshot, pickling) carry no scope and no graph along
        return {**super().__getstate__(), "_memo": None, "_scoped": False}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.out_shape


def shared_bodies(models: Iterable[nn.Module]) -> list[SharedBody]:
    """The SharedBody modules of ``models``, each once."""
    found = {id(m): m for model in models for m in model.modules() if isinstance(m, SharedBody)}
    return list(found.values())


@contextmanager
def one_forward(bodies: list[SharedBody]) -> Iterator[None]:
    """A scope in which each of ``bodies`` runs once per input (see ``SharedBody``)."""
    for body in bodies:
        body._scoped = True
    try:
        yield
    finally:
        for body in bodies:
            body._scoped, body._memo = False, None
