"""nn_from_config and its helpers: layer sizes are inferred from the env's spaces."""

import math

import pytest
import torch
from torch import nn

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.nn import (
    ActionLinear,
    FlattenLinear,
    SequentialExtended,
    action_output_size,
    auto_input_shape,
    get_module_list,
    nn_from_config,
)

MLP_BODY = [
    {"_target_": "torch.nn.Linear", "out_features": 64},
    {"_target_": "torch.nn.Tanh"},
    {"_target_": "torch.nn.Linear", "out_features": 64},
    {"_target_": "torch.nn.Tanh"},
]
NATURE_BODY = [
    {"_target_": "torch.nn.Conv2d", "out_channels": 32, "kernel_size": 8, "stride": 4},
    {"_target_": "torch.nn.ReLU"},
    {"_target_": "torch.nn.Conv2d", "out_channels": 64, "kernel_size": 4, "stride": 2},
    {"_target_": "torch.nn.ReLU"},
    {"_target_": "torch.nn.Conv2d", "out_channels": 64, "kernel_size": 3, "stride": 1},
    {"_target_": "torch.nn.ReLU"},
    {"_target_": "torchrl_cli.nn.FlattenLinear", "out_features": 512},
    {"_target_": "torch.nn.ReLU"},
]
ACTION_HEAD = [{"_target_": "torchrl_cli.nn.ActionLinear"}]
DISCRETE = SpaceInfo(SpaceKind.DISCRETE, (), n=3, dtype="int64")
BOX = SpaceInfo(SpaceKind.CONTINUOUS, (2, 3), dtype="float32")


def _state(shape):
    return SpaceInfo(SpaceKind.CONTINUOUS, tuple(shape))


def _layers(net: SequentialExtended) -> tuple[list[nn.Module], list[nn.Module]]:
    body, head = net.layers
    return list(body.layers), list(head.layers)


def test_mlp_body_infers_in_features_from_state_shape():
    """An MLP body on a (4,) state gets Linear(4->64), Tanh, Linear(64->64), Tanh."""
    net = nn_from_config({"body": MLP_BODY, "head": []}, _state((4,)))
    body, head = _layers(net)
    assert [type(m) for m in body] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh]
    assert (body[0].in_features, body[0].out_features) == (4, 64)
    assert (body[2].in_features, body[2].out_features) == (64, 64)
    assert head == []
    assert net.out_shape == (64,)
    assert net(torch.zeros(5, 4)).shape == (5, 64)


def test_action_linear_discrete_outputs_n_logits():
    """ActionLinear in a head sizes its output to n for a Discrete(n) space."""
    net = nn_from_config({"body": MLP_BODY, "head": ACTION_HEAD}, _state((4,)), DISCRETE)
    _, head = _layers(net)
    assert isinstance(head[0], ActionLinear)
    assert (head[0].in_features, head[0].out_features) == (64, 3)
    assert net.out_shape == (3,)
    assert net(torch.zeros(2, 4)).shape == (2, 3)


def test_action_linear_box_outputs_prod_of_shape():
    """ActionLinear in a head outputs prod(shape) means for a Box(shape) action space."""
    net = nn_from_config({"body": MLP_BODY, "head": ACTION_HEAD}, _state((4,)), BOX)
    _, head = _layers(net)
    assert head[0].out_features == 6
    assert net.out_shape == (6,)
    assert net(torch.zeros(2, 4)).shape == (2, 6)


@pytest.mark.parametrize(
    ("info", "size"),
    [(DISCRETE, 3), (SpaceInfo(SpaceKind.DISCRETE, (), n=7), 7), (BOX, 6),
     (SpaceInfo(SpaceKind.CONTINUOUS, (1,)), 1)],
)
def test_action_output_size(info, size):
    """action_output_size is n for Discrete and prod(shape) for Box; ActionLinear matches it."""
    assert action_output_size(info) == size
    layer = ActionLinear((8,), info)
    assert layer(torch.zeros(4, 8)).shape == (4, size)


def test_nature_cnn_infers_channels_and_flattened_size():
    """The Nature CNN on (4,84,84) gets in_channels=4 and FlattenLinear(3136->512)."""
    net = nn_from_config({"body": NATURE_BODY, "head": []}, _state((4, 84, 84)))
    body, _ = _layers(net)
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(4, 32), (32, 64), (64, 64)]
    flat = body[6]
    assert isinstance(flat, FlattenLinear)
    assert (flat.in_features, flat.out_features) == (64 * 7 * 7, 512) == (3136, 512)
    assert net.out_shape == (512,)
    assert net(torch.zeros(2, 4, 84, 84)).shape == (2, 512)


def test_nature_cnn_with_action_head():
    """The Nature CNN followed by an ActionLinear head outputs one logit per action."""
    net = nn_from_config({"body": NATURE_BODY, "head": ACTION_HEAD}, _state((4, 84, 84)),
                         SpaceInfo(SpaceKind.DISCRETE, (), n=6))
    assert net.out_shape == (6,)
    assert net(torch.zeros(3, 4, 84, 84)).shape == (3, 6)


def test_action_linear_after_conv_gets_flattened_input():
    """ActionLinear right after a conv (it flattens, like FlattenLinear) gets the full shape."""
    config = {"body": [{"_target_": "torch.nn.Conv2d", "out_channels": 8, "kernel_size": 3}],
              "head": ACTION_HEAD}
    net = nn_from_config(config, _state((4, 10, 10)), DISCRETE)
    _, head = _layers(net)
    assert head[0].in_features == 8 * 8 * 8
    assert net(torch.zeros(2, 4, 10, 10)).shape == (2, 3)


@pytest.mark.parametrize("target", ["torch.nn.Tanh", "torch.nn.ReLU", "torch.nn.Flatten",
                                    "torch.nn.Identity"])
def test_auto_input_shape_leaves_activations_unchanged(target):
    """Layers without an input-size argument come back equal, as a copy, the input untouched."""
    node = {"_target_": target}
    out = auto_input_shape(node, (4, 84, 84))
    assert out == {"_target_": target}
    assert out is not node
    assert node == {"_target_": target}


@pytest.mark.parametrize(
    ("node", "shape", "expected"),
    [
        ({"_target_": "torch.nn.Linear", "out_features": 8}, (5,), {"in_features": 5}),
        ({"_target_": "torch.nn.Linear", "out_features": 8}, (3, 5), {"in_features": 5}),
        ({"_target_": "torchrl_cli.nn.FlattenLinear", "out_features": 8}, (64, 7, 7),
         {"in_features": [64, 7, 7]}),
        ({"_target_": "torch.nn.Conv2d", "out_channels": 8, "kernel_size": 3}, (4, 84, 84),
         {"in_channels": 4}),
        ({"_target_": "torch.nn.BatchNorm1d"}, (16,), {"num_features": 16}),
        ({"_target_": "torch.nn.Linear", "in_features": 9, "out_features": 8}, (5,),
         {"in_features": 9}),
    ],
)
def test_auto_input_shape_fills_the_input_argument(node, shape, expected):
    """Linear gets the last dim, FlattenLinear the shape, Conv the channels; explicit sizes stay."""
    out = auto_input_shape(node, shape)
    assert out == {**node, **expected}


def test_get_module_list_mlp_final_shape():
    """get_module_list builds the MLP layers in order and returns the final shape (64,)."""
    layers, shape = get_module_list(MLP_BODY, (4,))
    assert len(layers) == 4
    assert shape == (64,)
    assert layers[0].in_features == 4


def test_get_module_list_conv_shapes_step_by_step():
    """Each prefix of the Nature CNN gives the expected intermediate output shape."""
    expected = [(32, 20, 20), (32, 20, 20), (64, 9, 9), (64, 9, 9), (64, 7, 7), (64, 7, 7),
                (512,), (512,)]
    for i, want in enumerate(expected, start=1):
        _, shape = get_module_list(NATURE_BODY[:i], (4, 84, 84))
        assert shape == want, f"after {i} layers"


def test_get_module_list_linear_acts_on_last_dim():
    """nn.Linear on a (3,5) input maps the last dim only: the final shape is (3,7)."""
    layers, shape = get_module_list([{"_target_": "torch.nn.Linear", "out_features": 7}], (3, 5))
    assert shape == (3, 7)
    assert layers[0](torch.zeros(2, 3, 5)).shape == (2, 3, 7)


def test_get_module_list_empty_keeps_shape():
    """An empty layer list builds nothing and keeps the input shape."""
    assert get_module_list([], (4, 84, 84)) == ([], (4, 84, 84))


def test_given_body_is_used_instead_of_built():
    """A given body module is used as is; the head is sized from the body's output."""
    body = nn.Linear(4, 10)
    net = nn_from_config({"body": MLP_BODY, "head": ACTION_HEAD}, _state((4,)), DISCRETE,
                         body=body)
    assert net.layers[0] is body
    head = list(net.layers[1].layers)
    assert head[0].in_features == 10
    assert net.out_shape == (3,)


def test_given_head_is_used_instead_of_built():
    """A given head module is used as is; out_shape is the head's output shape."""
    head = nn.Sequential(nn.Linear(64, 5), nn.Tanh())
    net = nn_from_config({"body": MLP_BODY, "head": ACTION_HEAD}, _state((4,)), DISCRETE,
                         head=head)
    assert net.layers[1] is head
    assert net.out_shape == (5,)
    assert net(torch.zeros(2, 4)).shape == (2, 5)


def test_given_body_and_head_build_nothing():
    """With both modules given, the config is not read (its layers need not be valid)."""
    body, head = nn.Conv2d(4, 2, 3), nn.Flatten()
    bogus = {"body": [{"_target_": "no.such.Layer"}], "head": [{"_target_": "no.such.Layer"}]}
    net = nn_from_config(bogus, _state((4, 6, 6)), body=body, head=head)
    assert net.layers[0] is body and net.layers[1] is head
    assert net.out_shape == (2 * 4 * 4,)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in body.parameters())


def test_flatten_linear_accepts_a_shape():
    """FlattenLinear given a shape flattens it: in_features is the product of the shape."""
    layer = FlattenLinear((2, 3, 4), 5)
    assert layer.in_features == math.prod((2, 3, 4))
    assert layer(torch.zeros(7, 2, 3, 4)).shape == (7, 5)
