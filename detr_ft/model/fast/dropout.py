"""Dropout whose masks are cheap to draw on the CPU.

torch's CPU dropout draws one Bernoulli sample per element (about 5 ms per million elements here, 27% of a
frozen-backbone R50 DETR step on 2 cores). This draws 64 random bits per 4 elements from the same generator
(so torch.manual_seed still makes it reproducible, and the per-batch reseeding keeps exact resume) and keeps
an element when 15 of its bits are at or above round(p * 2**15): each element is kept independently with
probability 1 - p', p' being p rounded to a multiple of 2**-15 (0.1 -> 0.100006), and the kept ones are scaled
by 1 / (1 - p') so the expectation is unchanged, as in torch's dropout. On other devices (CUDA draws fused
Philox masks, already fast) and outside training it is torch's F.dropout.
"""

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 15
_LEVELS = 1 << _BITS


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A [shape] tensor of 0 and 1 / (1 - p') (see the module docstring), drawn from torch's CPU generator."""
    count = shape.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_()  # 63 random bits: 4 x 15 used
    draws = words.view(torch.int16)[:count].bitwise_and_(_LEVELS - 1)
    dropped_levels = round(p * _LEVELS)
    kept = draws >= dropped_levels
    return kept.to(dtype).mul_(_LEVELS / (_LEVELS - dropped_levels)).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or round(p * _LEVELS) >= _LEVELS or x.numel() == 0:  # p' = 1: nothing is kept
        return F.dropout(x, p, training=True)
    # The mask in fp32 even for bf16 inputs: 1 / (1 - p') in bf16 would be off by up to 0.2%.
    return (x * keep_mask(x.shape, p, torch.float32)).to(x.dtype)


class Dropout(nn.Dropout):
    """nn.Dropout (same attributes, no state; `apply_fast_kernels` turns one into this in place) drawing its CPU
    masks with `dropout` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
