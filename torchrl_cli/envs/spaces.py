"""Gymnasium spaces as the ``SpaceInfo`` descriptions the builders use."""

import json
import math
from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np
import torch
from gymnasium import spaces

from torchrl_cli.errors import ConfigError, warn_once

SUPPORTED_ACTIONS = "Discrete, Box, MultiDiscrete, MultiBinary"
SUPPORTED_STATES = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them"

# images at least this wide and high are pixels: scaled to [0, 1] and read by a pixel CNN (the
# Nature CNN's smallest input), and preprocessed by env.pixels; smaller ones are grids of small
# integer codes (minigrid's 7x7 object/color/state view), read unscaled by a grid CNN
PIXEL_MIN_SIDE = 36

# the legal actions of a Discrete action space, as PettingZoo (a Dict observation's entry) and
# sb3-contrib's MaskablePPO and Gymnasium's toy-text envs (``info["action_mask"]``) give them:
# one 0/1 flag per action; the policy samples the legal ones only (``models.distributions``)
MASK_KEY = "action_mask"


def is_pixels(chw_shape: tuple[int, ...]) -> bool:
    """Whether a channels-first image ``(C, H, W)`` is large enough to be pixels."""
    return min(chw_shape[-2:]) >= PIXEL_MIN_SIDE


class SpaceKind(StrEnum):
    CONTINUOUS = "continuous"  # Box
    DISCRETE = "discrete"
    MULTI_DISCRETE = "multi_discrete"
    MULTI_BINARY = "multi_binary"


class EntryKind(StrEnum):
    BOX = "box"  # a vector (any shape that is not an image), any dtype
    IMAGE = "image"  # a 2-D (uint8), 3-D or 4-D (stacked) Box, either channel layout
    DISCRETE = "discrete"  # one-hot
    MULTI_DISCRETE = "multi_discrete"  # concatenated one-hots
    MULTI_BINARY = "multi_binary"  # flattened bits


@dataclass(frozen=True)
class ObsEntry:
    """One leaf of an observation space and how it is encoded (``envs.encode``).

    ``path``: dict keys (str) and tuple indices (int) from the top, ``()`` for the whole space;
    ``shape``/``dtype``: one raw observation's; ``enc_shape``: the encoded entry's (images
    channels first, discrete entries one-hot); ``layout``: an image's raw layout (``chw``,
    ``hwc``, ``hw``, ``shwc`` stacked channels-last frames, ``schw``); ``n`` (Discrete) or
    ``nvec`` (MultiDiscrete, flattened) and ``start`` (their smallest values, flattened).
    """

    path: tuple[str | int, ...]
    kind: EntryKind
    shape: tuple[int, ...]
    dtype: str
    enc_shape: tuple[int, ...]
    layout: str | None = None
    n: int | None = None
    nvec: tuple[int, ...] | None = None
    start: tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        """The entry's key path, dotted (``observation`` for the whole space)."""
        return ".".join(str(p) for p in self.path) or "observation"

    @property
    def size(self) -> int:
        return math.prod(self.enc_shape)

    @classmethod
    def from_dict(cls, data: dict) -> "ObsEntry":
        data = dict(data)
        for key in ("path", "shape", "enc_shape", "nvec", "start"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**{**data, "kind": EntryKind(data["kind"])})


@dataclass(frozen=True, eq=False)
class SpaceInfo:
    """What the builders need of an observation or action space: its kind, shape and dtype,
    and by kind the bounds (Box), ``n`` (Discrete: actions; MultiBinary: bits) or ``nvec``
    (MultiDiscrete: choices per dimension); ``mask`` (actions only): where the env gives the
    legal actions, ``obs`` (the Dict observation's ``action_mask`` entry, not encoded into the
    observation) or ``info`` (``info["action_mask"]``), None for an unmasked space.

    An observation space that is not a plain array (Dict, Tuple, Discrete, a channels-last
    image, ...) is described as the array it is encoded to (``envs.encode``), with ``entries``
    saying how; ``structured``: a Dict or Tuple, encoded to one flat float32 vector."""

    kind: SpaceKind
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    n: int | None = None
    nvec: tuple[int, ...] | None = None
    entries: tuple[ObsEntry, ...] | None = None
    mask: str | None = None

    @property
    def structured(self) -> bool:
        return bool(self.entries) and self.entries[0].path != ()

    @property
    def image(self) -> bool:
        """A single image, channels first: ``(C, H, W)``."""
        return not self.structured and len(self.shape) == 3

    def to_json(self) -> str:
        """As JSON (bounds as float32 lists, as ``from_json`` reads them back: a uint8 frame's
        bounds compare equal after a checkpoint's round trip), e.g. for checkpoints."""
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        as_lists = {
            k: v.astype(np.float32).tolist() if isinstance(v, np.ndarray) else v
            for k, v in fields.items()
        }
        return json.dumps(as_lists)

    @classmethod
    def from_json(cls, text: str) -> "SpaceInfo":
        data = json.loads(text)
        for key in ("low", "high"):
            if key in data:
                data[key] = np.asarray(data[key], dtype=np.float32)
        data["shape"] = tuple(data["shape"])
        if "nvec" in data:
            data["nvec"] = tuple(data["nvec"])
        if "entries" in data:
            data["entries"] = tuple(ObsEntry.from_dict(e) for e in data["entries"])
        return cls(**{**data, "kind": SpaceKind(data["kind"])})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpaceInfo) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())


def state_info(space: spaces.Space, env_id: str) -> SpaceInfo:
    """The description of an observation space as the array it is encoded to: a plain Box
    (not an image) or a channels-first image as it is; anything else with ``entries``. A Dict's
    ``action_mask`` entry is not part of it (``mask_source``)."""
    if mask_source(space) == "obs":
        space = spaces.Dict({k: v for k, v in space.spaces.items() if k != MASK_KEY})
    if isinstance(space, spaces.Box) and (
        image_layout(space) is None or image_layout(space) == "chw"
    ):
        return SpaceInfo(
            SpaceKind.CONTINUOUS, tuple(space.shape), str(space.dtype), space.low, space.high
        )
    entries = tuple(_entries(space, (), env_id))
    if not entries:
        raise ConfigError(
            f"env '{env_id}' has no observation entry that torchrl-cli can encode "
            f"(supported: {SUPPORTED_STATES}); wrap it with an observation wrapper in env.wrappers"
        )
    if entries[0].path == ():  # one array, transformed
        (entry,) = entries
        if entry.kind == EntryKind.IMAGE:
            low, high = (image_chw(np.asarray(b), entry.layout) for b in (space.low, space.high))
            return SpaceInfo(
                SpaceKind.CONTINUOUS, entry.enc_shape, entry.dtype, low, high, entries=entries
            )
        low, high = np.zeros(entry.enc_shape, np.float32), np.ones(entry.enc_shape, np.float32)
        return SpaceInfo(
            SpaceKind.CONTINUOUS, entry.enc_shape, "float32", low, high, entries=entries
        )
    lows, highs = [], []
    for entry in entries:  # bounds of vector entries only: the rest passes through unscaled
        leaf = _leaf(space, entry.path)
        if entry.kind == EntryKind.BOX:
            lows.append(np.asarray(leaf.low, np.float32).ravel())
            highs.append(np.asarray(leaf.high, np.float32).ravel())
        else:
            lows.append(np.full(entry.size, -np.inf, np.float32))
            highs.append(np.full(entry.size, np.inf, np.float32))
    size = sum(e.size for e in entries)
    return SpaceInfo(
        SpaceKind.CONTINUOUS,
        (size,),
        "float32",
        np.concatenate(lows),
        np.concatenate(highs),
        entries=entries,
    )


def image_layout(space: spaces.Box) -> str | None:
    """How a Box holds an image: ``chw``, ``hwc`` (channels last: the last dim is smaller than
    both others), ``hw`` (2-D uint8), ``shwc``/``schw`` (stacked frames); None: not an image."""
    shape = tuple(space.shape)
    if len(shape) == 2 and space.dtype == np.uint8:
        return "hw"
    if len(shape) == 3:
        return "hwc" if shape[2] < shape[0] and shape[2] < shape[1] else "chw"
    if len(shape) == 4:
        return "shwc" if shape[3] < shape[1] and shape[3] < shape[2] else "schw"
    return None


def image_chw(array: np.ndarray, layout: str) -> np.ndarray:
    """One image (no batch dim) as ``(C, H, W)``."""
    if layout == "hw":
        return array[None]
    if layout == "hwc":
        return np.moveaxis(array, -1, 0)
    if layout in ("shwc", "schw"):
        array = np.moveaxis(array, -1, 1) if layout == "shwc" else array
        return array.reshape(-1, *array.shape[2:])
    return array


def _leaf(space: spaces.Space, path: tuple) -> spaces.Space:
    for key in path:
        space = space[key]
    return space


def _entries(space: spaces.Space, path: tuple, env_id: str):
    key = ".".join(str(p) for p in path) or "observation"
    if isinstance(space, spaces.Dict):
        for name, sub in space.spaces.items():
            yield from _entries(sub, (*path, str(name)), env_id)
    elif isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _entries(sub, (*path, i), env_id)
    elif isinstance(space, spaces.Box):
        shape, dtype = tuple(space.shape), str(space.dtype)
        layout = image_layout(space)
        if layout is None:
            yield ObsEntry(path, EntryKind.BOX, shape, dtype, (math.prod(shape),))
        else:
            enc = image_chw(np.zeros(shape, np.uint8), layout).shape
            yield ObsEntry(path, EntryKind.IMAGE, shape, dtype, tuple(enc), layout=layout)
    elif isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        yield ObsEntry(path, EntryKind.DISCRETE, (), str(space.dtype), (n,), n=n, start=(start,))
    elif isinstance(space, spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in np.ravel(space.nvec))
        start = tuple(int(s) for s in np.ravel(space.start))
        yield ObsEntry(
            path, EntryKind.MULTI_DISCRETE, tuple(space.shape), str(space.dtype), (sum(nvec),),
            nvec=nvec, start=start,
        )
    elif isinstance(space, spaces.MultiBinary):
        shape = tuple(space.shape)
        yield ObsEntry(path, EntryKind.MULTI_BINARY, shape, "int8", (math.prod(shape),))
    elif _is_text(space):
        warn_once(
            f"env '{env_id}': observation entry '{key}' ({type(space).__name__}) is dropped; "
            "the policy does not see it"
        )
    else:
        raise ConfigError(
            f"env '{env_id}': observation entry '{key}' is a {type(space).__name__} space, "
            "which torchrl-cli cannot encode (no fixed size); drop it or turn it into a "
            "fixed-size Box with an observation wrapper in env.wrappers (e.g. "
            "gymnasium.wrappers.FilterObservation for a Dict entry)"
        )


def _is_text(space: spaces.Space) -> bool:
    """Gymnasium's Text, or any space of strings (minigrid's MissionSpace)."""
    if isinstance(space, spaces.Text):
        return True
    if isinstance(space, spaces.Sequence | spaces.Graph | spaces.OneOf):
        return False
    try:
        return isinstance(space.sample(), str)
    except Exception:
        return False


def action_info(space: spaces.Space, env_id: str) -> SpaceInfo:
    """The kind (discrete | continuous | multi_discrete | multi_binary), shape, and n, nvec or
    bounds of an action space."""
    if isinstance(space, spaces.Discrete) and space.start == 0:
        return SpaceInfo(SpaceKind.DISCRETE, (), "int64", n=int(space.n))
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
        nvec = tuple(int(n) for n in space.nvec)
        return SpaceInfo(SpaceKind.MULTI_DISCRETE, tuple(space.shape), "int64", nvec=nvec)
    if isinstance(space, spaces.MultiBinary) and len(space.shape) == 1:
        shape = tuple(space.shape)
        return SpaceInfo(SpaceKind.MULTI_BINARY, shape, "int8", n=int(shape[0]))
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        return SpaceInfo(SpaceKind.CONTINUOUS, tuple(space.shape), "float32", low, high)
    raise ConfigError(
        f"env '{env_id}' has action space {space}, which torchrl-cli cannot handle yet "
        f"(supported: {SUPPORTED_ACTIONS}, starting at 0, one-dimensional); pick another env "
        "or wrap this one with a Gymnasium action wrapper through env.wrappers"
    )


def mask_source(space: spaces.Space) -> str | None:
    """``obs`` when ``space`` is a Dict with an ``action_mask`` entry, else None."""
    return "obs" if isinstance(space, spaces.Dict) and MASK_KEY in space.spaces else None


def check_mask(action: SpaceInfo, obs_space: spaces.Space, env_id: str) -> None:
    """Refuse, in one line, a mask on actions that are not Discrete, or of the wrong size."""
    where = f"env '{env_id}' gives an action_mask"
    if action.kind != SpaceKind.DISCRETE:
        raise ConfigError(
            f"{where} for {action.kind} actions; torchrl-cli masks Discrete actions only "
            "(drop the mask with an observation wrapper in env.wrappers)"
        )
    if mask_source(obs_space) == "obs":
        size = math.prod(obs_space[MASK_KEY].shape or (0,))
        if size != action.n:
            raise ConfigError(f"{where} of {size} flags for {action.n} actions")


def to_env_action(actions: torch.Tensor | np.ndarray, info: SpaceInfo) -> np.ndarray:
    """Actions as the env takes them: Box actions clipped to the bounds, MultiBinary as int8."""
    if isinstance(actions, torch.Tensor):
        actions = actions.cpu().numpy()
    if info.kind == SpaceKind.CONTINUOUS:
        actions = np.clip(actions, info.low, info.high)
    elif info.kind == SpaceKind.MULTI_BINARY:
        actions = actions.astype(np.int8)
    return actions
