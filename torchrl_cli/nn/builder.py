"""Build torch networks from layer lists in the config, with sizes taken from the environment."""

import inspect
from collections.abc import Sequence

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo
from torchrl_cli.nn.layers import FlattenLinear, ModuleExtended, SequentialExtended
from torchrl_cli.utils import get_obj

# The constructor argument that receives the input size, per layer kind.
_INPUT_ARGS = ("in_features", "in_channels", "input_size", "num_features")


def auto_input_shape(obj_config: dict, input_shape: Sequence[int]) -> dict:
    """Return ``obj_config`` with the layer's input-size argument filled from ``input_shape``.

    Linear layers get the last dim (FlattenLinear the whole shape, which it flattens); Conv
    layers get the channel count (first dim); layers without an input size (activations) are
    returned unchanged.
    """
    cls = get_class(obj_config["_target_"])
    params = inspect.signature(cls.__init__).parameters
    arg = next((a for a in _INPUT_ARGS if a in params), None)
    if arg is None or arg in obj_config:
        return dict(obj_config)
    if arg == "in_features" and issubclass(cls, FlattenLinear):
        value = list(input_shape)  # it flattens everything but the batch dim
    elif arg == "in_features":
        value = int(input_shape[-1])  # nn.Linear acts on the last dim
    else:
        value = int(input_shape[0])  # channels first
    return {**obj_config, arg: value}


def get_module_list(
    config: Sequence,
    input_shape: Sequence[int],
    action_info: SpaceInfo | None = None,
    state_info: SpaceInfo | None = None,
) -> tuple[list[nn.Module], tuple[int, ...]]:
    """Instantiate a list of layer nodes in order, feeding each one's output shape to the next.

    Returns the layers and the output shape of the last one. ``action_info`` and
    ``state_info`` are passed to layers that ask for them (ActionLinear, MultiInputEncoder).
    """
    layers: list[nn.Module] = []
    shape = tuple(input_shape)
    for node in config:
        node = OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node)
        node = auto_input_shape(node, shape)
        cls = get_class(node["_target_"])
        layer = get_obj(node, _partial_=True)
        params = inspect.signature(cls.__init__).parameters
        # given after instantiation: Hydra would turn the SpaceInfo dataclasses into dicts
        given = {"action_info": action_info, "state_info": state_info}
        layer = layer(**{k: v for k, v in given.items() if k in params})
        layers.append(layer)
        shape = _output_shape(layer, shape)
    return layers, shape


def nn_from_config(
    config: DictConfig | dict,
    state_info: SpaceInfo,
    action_info: SpaceInfo | None = None,
    body: nn.Module | None = None,
    head: nn.Module | None = None,
) -> SequentialExtended:
    """Create ``body`` then ``head`` from ``config.body`` / ``config.head`` layer lists.

    A given ``body`` or ``head`` module is used instead of building that part. The result is a
    SequentialExtended whose ``out_shape`` is the shape a model's output layer receives.
    """
    shape = tuple(state_info.shape)
    if body is None:
        layers, shape = get_module_list(config["body"], shape, action_info, state_info)
        body = SequentialExtended(*layers)
    else:
        shape = _output_shape(body, shape)
    if head is None:
        layers, shape = get_module_list(config["head"], shape, action_info, state_info)
        head = SequentialExtended(*layers)
    else:
        shape = _output_shape(head, shape)
    net = SequentialExtended(body, head)
    net.out_shape = shape
    return net


def _output_shape(layer: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(layer, FlattenLinear):
        return (layer.out_features,)
    if isinstance(layer, nn.Linear):  # acts on the last dim
        return (*input_shape[:-1], layer.out_features)
    if isinstance(layer, ModuleExtended):
        return layer.output_shape(input_shape)
    with torch.no_grad():
        return tuple(layer(torch.zeros(1, *input_shape)).shape[1:])
