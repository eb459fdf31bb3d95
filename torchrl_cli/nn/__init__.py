"""Network building blocks and the config-driven builder."""

from torchrl_cli.nn.builder import auto_input_shape, get_module_list, nn_from_config
from torchrl_cli.nn.layers import (
    ActionLinear,
    FlattenLinear,
    ModuleExtended,
    PixelScale,
    SequentialExtended,
    Tanh,
    action_output_size,
)

__all__ = [
    "ActionLinear",
    "FlattenLinear",
    "ModuleExtended",
    "PixelScale",
    "SequentialExtended",
    "Tanh",
    "action_output_size",
    "auto_input_shape",
    "get_module_list",
    "nn_from_config",
]
