"""``net.hidden`` and ``net.activation``: the fully connected layers that end a net's body (an
MLP's hidden layers) by width and activation, for both nets or, through
``agent.<model>.net``, for one (SB3's ``net_arch=dict(pi=[...], vf=[...])``, ``activation_fn``).

The nets stay layer lists (``nn_from_config``): these keys rewrite the list's trailing run of
``torch.nn.Linear`` + activation pairs, leaving whatever comes before it (convolutions, an
encoder) as written, so every shipped net and every user-written one takes them the same way.
"""

from omegaconf import DictConfig, OmegaConf

from torchrl_cli.errors import ConfigError

LINEAR = "torch.nn.Linear"
# the names net.activation takes; tanh is the package's fast tanh (layers.Tanh), as in net=mlp
ACTIVATIONS = {
    "tanh": "torchrl_cli.nn.Tanh",
    "relu": "torch.nn.ReLU",
    "elu": "torch.nn.ELU",
    "gelu": "torch.nn.GELU",
    "silu": "torch.nn.SiLU",
}
# activation targets a listed body may use in its trailing pairs (torch's own tanh too)
_ACTIVATION_TARGETS = {*ACTIVATIONS.values(), "torch.nn.Tanh"}


def trailing_pairs(body) -> int:
    """How many (``torch.nn.Linear``, activation) pairs end ``body``."""
    layers = list(body)
    pairs = 0
    while len(layers) >= 2 * (pairs + 1):
        linear, act = layers[-2 * pairs - 2], layers[-2 * pairs - 1]
        if linear.get("_target_") != LINEAR or act.get("_target_") not in _ACTIVATION_TARGETS:
            break
        pairs += 1
    return pairs


def check_hidden(where: str, hidden, activation) -> None:
    """ConfigError for widths below 1 or an unknown activation name (``where``: the key)."""
    if hidden is not None and any(int(width) < 1 for width in hidden):
        raise ConfigError(f"{where}.hidden={list(hidden)} must hold widths of at least 1")
    if activation is not None and activation not in ACTIVATIONS:
        raise ConfigError(
            f"{where}.activation={activation} is not an activation; choose one of "
            f"{', '.join(ACTIVATIONS)}"
        )


def with_hidden(net_cfg: DictConfig, own: DictConfig | dict | None = None) -> DictConfig:
    """``net_cfg`` with its trailing Linear + activation pairs rebuilt from ``hidden`` widths
    and ``activation``, each taken from ``own`` (one model's ``agent.<model>.net``) where set,
    else from ``net_cfg``; ``net_cfg`` itself when neither sets either.

    Unset widths keep the listed ones; an unset activation keeps the last listed pair's (with
    its arguments). ``hidden=[]`` leaves no hidden layer: the output layer reads the features
    before the pairs (the observations, for an MLP).
    """
    own = own or {}
    hidden = own.get("hidden")
    hidden = net_cfg.get("hidden") if hidden is None else hidden
    activation = own.get("activation") or net_cfg.get("activation")
    if hidden is None and activation is None:
        return net_cfg
    body = OmegaConf.to_container(net_cfg.body)
    pairs = trailing_pairs(body)
    kept, listed = body[: len(body) - 2 * pairs], body[len(body) - 2 * pairs :]
    if activation is not None:
        act = {"_target_": ACTIVATIONS[activation]}
    elif listed:
        act = listed[-1]
    else:
        raise ConfigError(
            f"net {net_cfg.name}'s body ends in no Linear + activation layers, so net.hidden "
            "has no activation to copy; set net.activation too"
        )
    widths = [layer["out_features"] for layer in listed[::2]] if hidden is None else hidden
    new_body = list(kept)
    for width in widths:
        new_body += [{"_target_": LINEAR, "out_features": int(width)}, dict(act)]
    made = OmegaConf.create(OmegaConf.to_container(net_cfg))
    made.body = new_body
    return made
