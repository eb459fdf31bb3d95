"""Observations of any supported space as the one array the rollout stores and the net reads.

``SpaceInfo.entries`` (``envs.spaces.state_info``) says how: a channels-last image becomes
channels first (its dtype kept: uint8 frames stay uint8), a Discrete observation one-hot, a
MultiDiscrete one concatenated one-hots, a MultiBinary one flat; a Dict or Tuple becomes one
flat float32 vector of its encoded entries in order (images flattened channels first), which
the net's ``MultiInputEncoder`` splits again. A plain Box needs no encoding (``None``).

One torch implementation serves the env (``encode_numpy``, on numpy batches), ``load_policy``
and the exported program (``ObsEncoder`` takes dicts and tuples of tensors).
"""

import numpy as np
import torch
from torch import nn

from torchrl_cli.envs.spaces import EntryKind, ObsEntry, SpaceInfo


class ObsEncoder(nn.Module):
    """Raw observations (a tensor, or dicts/tuples of tensors, with any leading batch dims) to
    the encoded array ``state_info`` describes."""

    def __init__(self, state_info: SpaceInfo):
        super().__init__()
        self.entries = tuple(state_info.entries)
        self.structured = state_info.structured

    def forward(self, obs) -> torch.Tensor:
        parts = []
        for entry in self.entries:
            leaf = obs
            for key in entry.path:
                leaf = leaf[key]
            if not isinstance(leaf, torch.Tensor):
                leaf = torch.as_tensor(np.asarray(leaf))
            batch = leaf.dim() - len(entry.shape)
            encoded = encode_entry(entry, leaf)
            if not self.structured:
                return encoded
            parts.append(encoded.flatten(start_dim=batch).float())
        return torch.cat(parts, dim=-1)


def encode_entry(entry: ObsEntry, leaf: torch.Tensor) -> torch.Tensor:
    """One entry, with leading batch dims, as ``(*batch, *entry.enc_shape)``."""
    batch = leaf.shape[: leaf.dim() - len(entry.shape)]
    if entry.kind == EntryKind.IMAGE:
        if entry.layout == "hw":
            return leaf.unsqueeze(-3)
        if entry.layout == "hwc":
            return leaf.movedim(-1, -3)
        if entry.layout == "shwc":
            leaf = leaf.movedim(-1, -3)
        if entry.layout in ("shwc", "schw"):
            return leaf.flatten(-4, -3)
        return leaf
    if entry.kind == EntryKind.DISCRETE:
        choices = torch.arange(entry.n, device=leaf.device)
        return (leaf.long().unsqueeze(-1) - entry.start[0] == choices).float()
    if entry.kind == EntryKind.MULTI_DISCRETE:
        flat = leaf.long().reshape(*batch, len(entry.nvec))
        offsets = np.concatenate([[0], np.cumsum(entry.nvec)[:-1]]) - np.asarray(entry.start)
        index = flat + torch.as_tensor(offsets, device=leaf.device)
        choices = torch.arange(sum(entry.nvec), device=leaf.device)
        return (index.unsqueeze(-1) == choices).any(dim=-2).float()
    return leaf.reshape(*batch, entry.size).float()  # BOX, MULTI_BINARY


def encode_numpy(encoder: ObsEncoder | None, obs):
    """A numpy batch (or one observation) as the env gives it, encoded to a numpy array;
    unchanged without an encoder (a plain Box)."""
    if encoder is None:
        return obs
    with torch.no_grad():
        return encoder(obs).contiguous().numpy()


def make_encoder(state_info: SpaceInfo) -> ObsEncoder | None:
    """The encoder ``state_info`` needs, or None for a plain Box."""
    return ObsEncoder(state_info) if state_info.entries else None


def example_obs(state_info: SpaceInfo, batch: int, rng: np.random.Generator | None = None):
    """Raw observations (dicts and tuples as the env gives them) for ``batch`` samples: zeros,
    or with ``rng`` random values of each entry's kind (``random_values``)."""
    if not state_info.entries:
        shape = (batch, *state_info.shape)
        if rng is None:
            return torch.zeros(shape, dtype=_dtype(state_info.dtype))
        values = random_values(None, shape, state_info.dtype, rng)
        if state_info.low is not None and values.dtype.kind == "f":  # within the Box
            values = np.clip(values, state_info.low, state_info.high).astype(values.dtype)
        return torch.as_tensor(values)
    root: dict = {}
    for entry in state_info.entries:
        shape = (batch, *entry.shape)
        if rng is None:
            value = torch.zeros(shape, dtype=_dtype(entry.dtype))
        else:
            value = torch.as_tensor(random_values(entry, shape, entry.dtype, rng))
        if entry.path == ():
            return value
        node = root
        for key in entry.path[:-1]:
            node = node.setdefault(key, {})
        node[entry.path[-1]] = value
    return _tuples(root)


def random_values(
    entry: ObsEntry | None, shape: tuple[int, ...], dtype: str, rng: np.random.Generator
) -> np.ndarray:
    """Random raw values of an entry (None: a plain Box) of ``shape``: a Discrete or
    MultiDiscrete entry's own choices, 0/1 bits, any uint8, small integers for other integer
    dtypes, normal floats (scale 2) otherwise."""
    kind = entry.kind if entry is not None else EntryKind.BOX
    if kind in (EntryKind.DISCRETE, EntryKind.MULTI_DISCRETE):
        n = np.reshape(entry.nvec if entry.nvec else entry.n, entry.shape)
        values = np.reshape(entry.start, entry.shape) + rng.integers(n, size=shape)
    elif kind == EntryKind.MULTI_BINARY or np.dtype(dtype) == np.bool_:
        values = rng.integers(2, size=shape)
    elif np.dtype(dtype) == np.uint8:
        values = rng.integers(256, size=shape)
    elif np.dtype(dtype).kind in "iu":
        values = rng.integers(10, size=shape)
    else:
        values = rng.normal(0.0, 2.0, size=shape)
    return values.astype(dtype)


def _tuples(node):
    """Nested dicts whose keys are ints (Tuple spaces) as tuples."""
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return tuple(_tuples(node[i]) for i in range(len(node)))
    return {k: _tuples(v) for k, v in node.items()}


def _dtype(name: str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=name)).dtype


def batch_size_of(state_info: SpaceInfo, obs) -> int | None:
    """The batch size of a raw observation structure, or None for a single observation."""
    if not state_info.entries:
        leaf, shape = obs, state_info.shape
    else:
        entry = state_info.entries[0]
        leaf, shape = obs, entry.shape
        for key in entry.path:
            leaf = leaf[key]
    leaf = np.asarray(leaf)
    return None if leaf.ndim == len(shape) else int(leaf.shape[0])
