"""The backbone's speed paths: channels-last activations on the CPU, and the padding mask resized once per
feature size and forward (as a 1/0 float tensor) where the plain Backbone resizes it after every norm.

Both give the plain Backbone's features: channels-last only reorders memory (float rounding of other oneDNN
kernels, within 1e-5), and multiplying by 1/0 zeroes what masked_fill zeroes.
"""

import torch

from detr_ft.model.backbone import Backbone, downsample_mask


class FastBackbone(Backbone):
    """Backbone (same modules, parameters and state dict; `apply_fast_kernels` turns one into this in place)."""

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._keep_masks: dict[tuple, torch.Tensor] = {}  # this forward's 1/0 masks per feature size and dtype
        x = images.contiguous(memory_format=torch.channels_last) if _prefers_channels_last(images) else images
        try:
            features, feature_mask = super().forward(x, mask)
        finally:
            self._keep_masks = {}
        # In the usual layout whatever ran inside: what follows (and a feature cache) sees the same tensors.
        return features.contiguous(), feature_mask

    def _zero_padded_area(self, output: torch.Tensor) -> torch.Tensor:
        if not self.zero_padding or self._padding_mask is None:
            return output
        # Every normalisation of a stage has the same size: the mask is resized once per size and forward, and
        # kept in the features' dtype (a float multiply is several times faster than one by a bool tensor).
        key = (*output.shape[-2:], output.dtype)
        keep = self._keep_masks.get(key)
        if keep is None:
            keep = self._keep_masks[key] = (~downsample_mask(self._padding_mask, output))[:, None].to(output.dtype)
        return output * keep


def _prefers_channels_last(images: torch.Tensor) -> bool:
    """Channels-last activations (the weights keep their layout) on the CPU, where oneDNN's convolutions run
    faster with them (R50 DETR training step 10% faster on 2 cores; the same numbers either way). Not on CUDA:
    unmeasured there (channels-last usually helps tensor cores under autocast; benchmark before turning it on)."""
    return images.device.type == "cpu"
