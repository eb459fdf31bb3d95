"""Network building blocks and the config-driven builder."""

from torchrl_cli.nn.auto import AUTO, choose_net, resolve_net
from torchrl_cli.nn.builder import auto_input_shape, get_module_list, nn_from_config
from torchrl_cli.nn.encoders import MultiInputEncoder
from torchrl_cli.nn.layers import (
    ActionLinear,
    FlattenLinear,
    ModuleExtended,
    PixelScale,
    SequentialExtended,
    Tanh,
    ToFloat,
    action_output_size,
)

__all__ = [
    "AUTO",
    "ActionLinear",
    "FlattenLinear",
    "ModuleExtended",
    "MultiInputEncoder",
    "PixelScale",
    "SequentialExtended",
    "Tanh",
    "ToFloat",
    "action_output_size",
    "auto_input_shape",
    "choose_net",
    "get_module_list",
    "nn_from_config",
    "resolve_net",
]
