"""Sine position encoding of the DETR paper, computed from the padding mask so that padded pixels do
not shift the coordinates of real ones."""

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """mask [B, h, w] (True = padding) -> position encoding [B, 2 * num_pos_feats, h, w].

    Coordinates are the cumulative count of real pixels, normalised to [0, 2*pi] per image (so the same
    image gives the same encoding padded or not), then encoded with sines and cosines of geometric
    frequencies, y features first, then x.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        real = (~mask).to(torch.float32)
        y = real.cumsum(1)
        x = real.cumsum(2)
        eps = 1e-6
        y = y / (y[:, -1:, :] + eps) * self.scale
        x = x / (x[:, :, -1:] + eps) * self.scale
        exponent = 2 * (torch.arange(self.num_pos_feats, device=mask.device) // 2) / self.num_pos_feats
        frequencies = self.temperature ** exponent.to(torch.float32)
        return torch.cat([self._encode(y, frequencies), self._encode(x, frequencies)], dim=3).permute(0, 3, 1, 2)

    @staticmethod
    def _encode(coordinate: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
        """[B, h, w] -> [B, h, w, F]: sin on even features, cos on odd ones, interleaved."""
        angles = coordinate[..., None] / frequencies
        return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=4).flatten(3)
