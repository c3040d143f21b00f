"""Frozen BatchNorm folded into the convolution before it.

A frozen BatchNorm is an affine map per channel, y = x * scale + shift, so conv(x, W) followed by it equals
conv(x, W * scale) + shift: one pass over the activations instead of three, forward and backward. That holds
for a convolution that trains too: the gradient reaches W through W * scale, the same gradient as through the
separate norm (a [C_out] scale on the weight costs far less than three passes over the activations). The
parameters themselves never change (checkpoints keep the usual conv/bn keys, and a stage that unfreezes trains
its real weights). For a frozen weight the folded copy is cached and re-derived whenever its sources change (a
weight loaded, a move to another device); a trainable one is folded afresh at each call.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d


class FoldableFrozenBatchNorm2d(FrozenBatchNorm2d):
    """FrozenBatchNorm2d that lets its input through when the convolution before it already applied it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if "conv" in self.__dict__ else super().forward(x)


class FoldingConv2d(nn.Conv2d):
    """A bias-free convolution followed by a FoldableFrozenBatchNorm2d (`norm`, not a submodule: it stays
    where it is in the module tree, under its own state-dict keys). Made from an nn.Conv2d by
    `fold_frozen_norms`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self._folded()
        return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), self.stride, self.padding, self.dilation, self.groups)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        norm = self.__dict__["norm"]
        if self.weight.requires_grad or torch.compiler.is_compiling() or torch.compiler.is_exporting():
            # Not cached for a weight that trains: the fold must be in the autograd graph, and in validation
            # between steps fused AdamW has updated the weight in place without bumping its version counter, so
            # a cache keyed by version would go stale. Nor when traced (torch.export, ONNX): the fold becomes
            # part of the graph; fake tensors have no storage to key by.
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            return self.weight * scale[:, None, None, None], norm.bias - norm.running_mean * scale
        sources = (self.weight, norm.weight, norm.bias, norm.running_mean, norm.running_var)
        key = tuple((t.data_ptr(), t._version, t.dtype) for t in sources)
        if self.__dict__.get("_folded_key") != key:
            # Plain tensors even inside inference_mode: a later training forward may use them (a frozen stage
            # after a trained one still passes gradients through to its input).
            with torch.inference_mode(False), torch.no_grad():
                scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
                weight = self.weight * scale[:, None, None, None]
                bias = norm.bias - norm.running_mean * scale
            self.__dict__["_folded_cache"] = (weight, bias)
            self.__dict__["_folded_key"] = key
        return self.__dict__["_folded_cache"]


def fold_frozen_norms(resnet: nn.Module) -> None:
    """Pair every convolution of a torchvision ResNet built with FrozenBatchNorm2d with the norm after it, in
    place: the convolution becomes a FoldingConv2d and the norm a FoldableFrozenBatchNorm2d (same Parameters and
    buffers, same places in the tree, so the state dict is unchanged)."""
    pairs = [(resnet.conv1, resnet.bn1)]
    for module in resnet.modules():
        if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[1], FrozenBatchNorm2d):
            pairs.append((module[0], module[1]))  # a downsample shortcut: conv, norm
        for index in (1, 2, 3):
            norm = getattr(module, f"bn{index}", None)
            if module is not resnet and norm is not None:
                pairs.append((getattr(module, f"conv{index}"), norm))
    for conv, norm in pairs:
        if type(norm) not in (FrozenBatchNorm2d, FoldableFrozenBatchNorm2d) or conv.bias is not None:
            raise TypeError(
                f"cannot fold {type(norm).__name__} into a convolution: needs a bias-free conv and a frozen norm"
            )
        conv.__class__, norm.__class__ = FoldingConv2d, FoldableFrozenBatchNorm2d
        # Plain attributes, not submodules: each module keeps its one place (and key) in the tree.
        conv.__dict__["norm"] = norm
        norm.__dict__["conv"] = conv
