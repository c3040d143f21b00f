"""Speed paths for the plain DETR of detr_ft.model, applied in place by one call (`model.fast_kernels=auto`).

Each path computes what the plain PyTorch module it replaces computes (tests/model/test_fast_*.py hold each
against it), and keeps that module's parameters, buffers and place in the tree, so state dicts, weight loading,
checkpoints, EMA and ONNX export see the same model either way:
- folding.py: every frozen BatchNorm folded into the convolution before it (one pass over the activations);
- backbone.py: channels-last activations on the CPU, the padding mask resized once per size;
- dropout.py: CPU dropout masks drawn 4 elements per random word instead of one Bernoulli draw each;
- attention.py: nn.MultiheadAttention through fused scaled_dot_product_attention (an explicit path on the CPU
  where SDPA has no fast kernel).
"""

from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detr_ft.model.backbone import Backbone
from detr_ft.model.fast.attention import MultiheadAttention, can_be_fused
from detr_ft.model.fast.backbone import FastBackbone
from detr_ft.model.fast.dropout import Dropout
from detr_ft.model.fast.folding import fold_frozen_norms

MODES = ("auto", "off")


def apply_fast_kernels(model: nn.Module) -> nn.Module:
    """Turn the plain modules of `model` (a DETR or any part of one) into their fast versions, in place, and
    return it. Only exact plain classes are turned, so applying it twice changes nothing more."""
    for module in list(model.modules()):
        if type(module) is Backbone:
            module.__class__ = FastBackbone
            if any(type(m) is FrozenBatchNorm2d for m in module.body.modules()):  # not norm="batch"
                fold_frozen_norms(module.body)
        elif type(module) is nn.Dropout:
            module.__class__ = Dropout
        elif type(module) is nn.MultiheadAttention and can_be_fused(module):
            module.__class__ = MultiheadAttention
    return model
