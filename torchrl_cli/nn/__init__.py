"""Network building blocks and the config-driven builder."""

from torchrl_cli.nn.auto import AUTO, choose_net, resolve_net
from torchrl_cli.nn.builder import auto_input_shape, get_module_list, nn_from_config
from torchrl_cli.nn.encoders import MultiInputEncoder
from torchrl_cli.nn.hidden import ACTIVATIONS, check_hidden, with_hidden
from torchrl_cli.nn.layers import (
    ActionLinear,
    Columns,
    FlattenLinear,
    ModuleExtended,
    PerAgent,
    PixelScale,
    SequentialExtended,
    Tanh,
    ToFloat,
    action_output_size,
)

__all__ = [
    "ACTIVATIONS",
    "AUTO",
    "ActionLinear",
    "Columns",
    "FlattenLinear",
    "ModuleExtended",
    "MultiInputEncoder",
    "PerAgent",
    "PixelScale",
    "SequentialExtended",
    "Tanh",
    "ToFloat",
    "action_output_size",
    "auto_input_shape",
    "check_hidden",
    "choose_net",
    "get_module_list",
    "nn_from_config",
    "resolve_net",
    "with_hidden",
]
