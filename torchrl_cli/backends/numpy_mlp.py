"""A model's plain MLP (Linear, Tanh and ReLU layers) evaluated in numpy, forward and backward.

The numpy backend acts through it (``numpy_actor``) and trains PPO-clip through it
(``numpy_update``): on batches of a few hundred samples or fewer, eager
PyTorch spends most of its time dispatching small ops and recording autograd, not computing
(docs/performance.md). ``NumpyMLP.of`` returns None for any other layer.
"""

import numpy as np
import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.nn import FlattenLinear, Tanh
from torchrl_cli.nn.shared import SharedBody

Array = np.ndarray


def actions_unfit(action_info: SpaceInfo) -> str | None:
    """Why numpy cannot sample and score this action space (it takes Discrete, and Box with
    one dim), or None."""
    kind = action_info.kind
    if kind == SpaceKind.DISCRETE or (kind == SpaceKind.CONTINUOUS and len(action_info.shape) == 1):
        return None
    shape = "x".join(map(str, action_info.shape)) or "scalar"
    return f"{kind} actions of shape {shape} (numpy takes Discrete and 1-d Box)"


def layers_unfit(layers: list[nn.Module]) -> str | None:
    """Why numpy cannot evaluate these layers, or None."""
    for layer in layers:
        if isinstance(layer, SharedBody):
            return "net.shared_body=true has no numpy path"
        if layer_kind(layer) is None:
            return f"net layer {type(layer).__name__} is not Linear, Tanh or ReLU"
    for param in (p for layer in layers for p in layer.parameters()):
        if param.device.type != "cpu":
            return f"the net is on {param.device.type}"
        if param.dtype != torch.float32:
            return f"the net's parameters are {str(param.dtype).removeprefix('torch.')}"
    return None


def layer_kind(layer: nn.Module) -> str | None:
    """``linear``, ``tanh`` or ``relu``; None for a layer numpy does not evaluate."""
    if isinstance(layer, nn.Linear):
        flattens = isinstance(layer, FlattenLinear) and len(layer.in_shape) > 1
        return None if flattens or layer.bias is None else "linear"
    if isinstance(layer, Tanh | nn.Tanh):
        return "tanh"
    if isinstance(layer, nn.ReLU):
        return "relu"
    return None


class NumpyMLP:
    """Layers of ``kinds`` over parameter arrays (torch's layout: weight ``[out, in]``, bias).

    ``params`` may be views of the torch parameters (acting) or of a flat copy (training);
    ``backward`` writes the gradients into ``grads``, arrays of the same shapes.
    """

    def __init__(self, kinds: list[str], params: list[Array]):
        self.kinds = kinds
        linears = iter(range(0, len(params), 2))
        self.index = [next(linears) if kind == "linear" else None for kind in kinds]
        self.params = params
        self.inputs: list[Array] = []  # each layer's input (or tanh output), kept for backward

    @staticmethod
    def of(layers: list[nn.Module]) -> tuple[list[str], list[nn.Parameter]] | None:
        """The kinds of ``layers`` and their parameters in ``NumpyMLP`` order; None when
        ``layers_unfit`` has a reason."""
        if layers_unfit(layers) is not None:
            return None
        params = [
            p
            for layer in layers
            if isinstance(layer, nn.Linear)
            for p in (layer.weight, layer.bias)
        ]
        return [layer_kind(layer) for layer in layers], params

    def forward(self, x: Array, keep: bool = False) -> Array:
        """The output for ``x``; with ``keep``, what ``backward`` needs is kept."""
        inputs = []
        for kind, i in zip(self.kinds, self.index, strict=True):
            if kind == "linear":
                inputs.append(x)
                x = np.dot(x, self.params[i].T) + self.params[i + 1]
            elif kind == "tanh":
                x = np.tanh(x)
                inputs.append(x)  # tanh' = 1 - tanh^2, from the output
            else:
                inputs.append(x)
                x = np.maximum(x, 0.0)
        if keep:
            self.inputs = inputs
        return x

    def backward(self, dout: Array, grads: list[Array]) -> None:
        """The parameters' gradients for output gradient ``dout``, after ``forward(keep=True)``."""
        layers = list(zip(self.kinds, self.index, self.inputs, strict=True))
        for depth, (kind, i, x) in enumerate(reversed(layers)):
            first = depth == len(layers) - 1
            if kind == "linear":
                np.dot(dout.T, x, out=grads[i])
                dout.sum(axis=0, out=grads[i + 1])
                if not first:  # no gradient w.r.t. the observations
                    dout = np.dot(dout, self.params[i])
            elif kind == "tanh":
                dout = dout * (1.0 - x * x)
            else:
                dout = dout * (x > 0)
