"""The multi-input encoder: one network input per observation entry (Dict and Tuple spaces)."""

import math

import torch
from torch import nn

from torchrl_cli.envs.spaces import EntryKind, ObsEntry, SpaceInfo, is_pixels
from torchrl_cli.nn.layers import ModuleExtended, SequentialExtended


class MultiInputEncoder(ModuleExtended):
    """Splits the flat vector a Dict or Tuple observation is encoded to (``envs.encode``) into
    its entries and concatenates their features: each image entry through a CNN of its own
    (``pixels`` layers for images of at least 36x36, uint8 ones scaled to [0, 1]; ``grid``
    layers for smaller ones), the other entries (vectors, normalized by the state normalizer;
    discrete ones, already one-hot) as they are. A single image or vector observation is one
    entry. ``pixels``/``grid``: layer lists (``_target_`` nodes) built by ``get_module_list``.
    """

    def __init__(self, state_info: SpaceInfo, pixels: list, grid: list):
        super().__init__()
        from torchrl_cli.nn.builder import get_module_list

        self.structured = state_info.structured
        if state_info.structured:
            entries = tuple(state_info.entries)
        else:  # the whole (already encoded) observation is one entry
            kind = EntryKind.IMAGE if state_info.image else EntryKind.BOX
            shape = tuple(state_info.shape)
            entries = (ObsEntry((), kind, shape, state_info.dtype, shape),)
        self.entries = entries
        self.encoders = nn.ModuleList()
        self.scaled: list[bool] = []
        self.out_features = 0
        for entry in entries:
            if entry.kind == EntryKind.IMAGE:
                pixels_entry = is_pixels(entry.enc_shape)
                layers, out = get_module_list(pixels if pixels_entry else grid, entry.enc_shape)
                self.encoders.append(SequentialExtended(*layers))
                self.scaled.append(pixels_entry and entry.dtype == "uint8")
                self.out_features += math.prod(out)
            else:
                self.encoders.append(nn.Flatten(start_dim=-len(entry.enc_shape)))
                self.scaled.append(False)
                self.out_features += entry.size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.structured:
            return self._one(self.entries[0], self.encoders[0], self.scaled[0], x)
        parts, start = [], 0
        batch = x.shape[:-1]
        for entry, encoder, scaled in zip(self.entries, self.encoders, self.scaled, strict=True):
            part = x[..., start : start + entry.size].reshape(*batch, *entry.enc_shape)
            start += entry.size
            parts.append(self._one(entry, encoder, scaled, part))
        return torch.cat(parts, dim=-1)

    @staticmethod
    def _one(entry: ObsEntry, encoder: nn.Module, scaled: bool, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if scaled else x.float()
        if entry.kind != EntryKind.IMAGE or x.dim() == 4:
            return encoder(x).flatten(start_dim=1) if entry.kind == EntryKind.IMAGE else encoder(x)
        lead = x.shape[:-3]  # conv layers take one batch dim
        out = encoder(x.reshape(-1, *x.shape[-3:]))
        return out.reshape(*lead, -1)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features,)
