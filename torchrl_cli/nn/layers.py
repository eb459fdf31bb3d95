"""Layers with the extras the net builder needs (after the seed's ``torchrl.nn``)."""

import math

import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind


class ModuleExtended(nn.Module):
    """A torch module that can report its output shape for an input shape."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape`` (no batch dim)."""
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        with torch.no_grad():
            return tuple(self(torch.zeros(1, *input_shape, device=device)).shape[1:])


class SequentialExtended(ModuleExtended):
    """``nn.Sequential`` with the ModuleExtended helpers; an empty one is the identity."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(self.layers) == 0:
            return tuple(input_shape)
        return super().output_shape(input_shape)


class PixelScale(ModuleExtended):
    """uint8 image frames to floats in [0, 1], inside the net: rollouts and minibatches carry the
    frames as uint8 and they become floats on the device. Float inputs pass through.

    Batches of frames ``[B, C, H, W]`` come out channels-last, the layout of the convolutions'
    weights (``run.build.build_model``): rearranged while they are bytes, a quarter of the
    copy that the first convolution would make of the floats, then scaled in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            return x
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.float().mul_(1.0 / 255.0)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)


class Columns(ModuleExtended):
    """The columns ``[start, stop)`` of flat rows: the part of a multi-agent row one model
    reads (``envs.pettingzoo_env.RowLayout``: the policy its agent's observation, a
    centralized value the global state)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = int(start), int(stop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start : self.stop]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape[:-1], self.stop - self.start)

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


class PerAgent(ModuleExtended):
    """A network per agent over multi-agent rows (``agent.share_parameters=false``): row r's
    features are ``nets[i](r)`` for its agent i, read from the row's one-hot index (the
    columns ``ids``), written into block i of ``len(nets)`` blocks whose others are zero. The
    model's output layer after it then has a block of weights per agent, so that no weight
    serves two agents (its bias, and a Box policy's log-std, are shared). Every net runs on
    every row and the one-hot selects, so the forward has no branch on the data (export) and
    an agent's parameters get gradients from its own rows only. A row with no agent (an absent
    one: all zeros) gets zeros. The one-hot is read by sign (> 0), which running observation
    normalization keeps: it maps a column's 1 to (1 - m) / s > 0 and its 0 to -m / s < 0."""

    def __init__(self, nets: list[nn.Module], ids: tuple[int, int]):
        super().__init__()
        if ids[1] - ids[0] != len(nets):
            raise ValueError(f"{len(nets)} nets, but agent ids in {ids[1] - ids[0]} columns")
        self.nets = nn.ModuleList(nets)
        self.ids = (int(ids[0]), int(ids[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_hot = (x[..., self.ids[0] : self.ids[1]] > 0).to(x.dtype)
        return torch.cat(
            [net(x) * one_hot[..., i : i + 1] for i, net in enumerate(self.nets)], dim=-1
        )

    def extra_repr(self) -> str:
        return f"agents={len(self.nets)}, ids={self.ids}"


class Tanh(nn.Module):
    """tanh computed as 2 sigmoid(2x) - 1: the same function (within 2e-7), but torch's CPU
    tanh kernel is ~8x slower than its sigmoid on these machines (36 vs 4.5 us for 256x64), and
    two tanh layers per net made up a quarter of a PPO minibatch step (docs/performance.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # acting batches: one kernel beats three at this size; an exported policy (any batch
        # size) takes plain tanh, since a branch on the size would bound its batch dimension
        if torch.compiler.is_exporting() or x.numel() <= 2048:
            return torch.tanh(x)
        return torch.sigmoid(2.0 * x) * 2.0 - 1.0


class FlattenLinear(nn.Linear):
    """Flatten the trailing ``in_features`` dims, then apply a linear layer.

    ``in_features`` may be a shape (the builder passes the previous layer's output shape); any
    leading dims (batch, time) are kept.
    """

    def __init__(self, in_features: int | tuple[int, ...], out_features: int, **kwargs):
        self.in_shape = _as_shape(in_features)
        super().__init__(math.prod(self.in_shape), out_features, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.in_shape) > 1:
            x = x.flatten(start_dim=-len(self.in_shape))
        return super().forward(x)


class ActionLinear(FlattenLinear):
    """A (flattening) linear layer whose output width comes from the action space.

    Discrete(n): n logits. MultiDiscrete(nvec): sum(nvec) logits. MultiBinary(n): n logits.
    Box(shape): one mean per action dimension.
    """

    def __init__(self, in_features: int | tuple[int, ...], action_info: SpaceInfo, **kwargs):
        super().__init__(in_features, action_output_size(action_info), **kwargs)


def action_output_size(action_info: SpaceInfo) -> int:
    if action_info.kind in (SpaceKind.DISCRETE, SpaceKind.MULTI_BINARY):
        return int(action_info.n)
    if action_info.kind == SpaceKind.MULTI_DISCRETE:
        return sum(action_info.nvec)
    return math.prod(action_info.shape)


def _as_shape(size: int | tuple[int, ...]) -> tuple[int, ...]:
    return (size,) if isinstance(size, int) else tuple(size)


class ToFloat(ModuleExtended):
    """Inputs as float32, unscaled: small integer grids (minigrid's codes) kept as they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)
