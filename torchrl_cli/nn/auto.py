"""``net=auto`` (the default): the net chosen from the observation space; and the check that a
named net can read the observations (an image large enough for its convolutions)."""

from omegaconf import DictConfig, OmegaConf

from torchrl_cli.envs.spaces import EntryKind, SpaceInfo
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn.encoders import is_pixels
from torchrl_cli.utils import config_dir

AUTO = "auto"


def choose_net(state_info: SpaceInfo) -> str:
    """multi_input for Dict/Tuple observations with an image entry, nature_cnn for images of
    36x36 or more, grid_cnn for smaller images, mlp for everything else (vectors; Dict/Tuple
    observations without images, whose flat encoding is one vector)."""
    if state_info.structured:
        images = any(e.kind == EntryKind.IMAGE for e in state_info.entries)
        return "multi_input" if images else "mlp"
    if state_info.image:
        return "nature_cnn" if is_pixels(state_info.shape) else "grid_cnn"
    return "mlp"


def resolve_net(net_cfg: DictConfig, state_info: SpaceInfo, env_id: str = "") -> DictConfig:
    """The concrete net config: ``auto``'s choice (its ``init``, ``hidden`` and ``activation``
    kept), or ``net_cfg`` once it is checked to fit the observations (``check_fits``)."""
    if net_cfg.name != AUTO:
        check_fits(net_cfg, state_info, env_id)
        return net_cfg
    chosen = OmegaConf.load(config_dir() / "net" / f"{choose_net(state_info)}.yaml")
    chosen.init = net_cfg.init
    chosen.hidden, chosen.activation = net_cfg.hidden, net_cfg.activation
    if net_cfg.get("shared_body") is not None:
        chosen.shared_body = net_cfg.shared_body
    return chosen


def check_fits(net_cfg: DictConfig, state_info: SpaceInfo, env_id: str) -> None:
    """ConfigError when an image observation is smaller than the net's convolutions take."""
    if not state_info.image:
        return
    need = min_image_side(net_cfg.body)
    height, width = state_info.shape[-2:]
    if need > min(height, width):
        raise ConfigError(
            f"net {net_cfg.name} takes images of at least {need}x{need}, but env "
            f"'{env_id}' gives {height}x{width}; use net=auto (it picks grid_cnn for small "
            "images) or a net with smaller kernels"
        )


def min_image_side(layers) -> int:
    """The smallest height and width the Conv2d/MaxPool2d layers of a list take (1 without)."""
    side = 1
    for node in reversed(list(layers)):
        target = str(node.get("_target_", ""))
        if not target.endswith(("Conv2d", "MaxPool2d", "AvgPool2d")):
            continue
        kernel = _first(node.get("kernel_size", 1))
        stride = _first(node.get("stride", 1 if "Conv" in target else kernel))
        padding = _first(node.get("padding", 0))
        side = max(1, (side - 1) * stride + kernel - 2 * padding)
    return side


def _first(value) -> int:
    listed = isinstance(value, list | tuple) or OmegaConf.is_list(value)
    return int(value[0]) if listed else int(value)
