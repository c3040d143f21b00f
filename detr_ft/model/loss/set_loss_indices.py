"""The matched pairs of every decoder layer and image as flat index tensors: built on the host from the matcher's
assignments and copied to the device at once, so the set loss gathers all layers' matched predictions and targets
with one indexing op each instead of a Python loop over images and layers."""

from dataclasses import dataclass

import numpy as np
import torch

from detr_ft.model.loss.matcher import Assignments


@dataclass(frozen=True)
class MatchedIndices:
    query: torch.Tensor  # [M] into the predictions flattened [L * B * Q]
    target: torch.Tensor  # [M] into the padded targets flattened [B * N]
    layer: torch.Tensor  # [M] the decoder layer of each pair (0: the main output), in ascending order
    main_count: int  # pairs of layer 0: the first main_count entries

    @classmethod
    def build(
        cls, assignments: Assignments, queries: int, targets_per_image: int, device: torch.device
    ) -> "MatchedIndices":
        """assignments: per layer, per image (query indices, target indices) host arrays, as HungarianMatcher.assign
        returns them; queries Q per image and targets_per_image N (the padded width) give the flat strides."""
        images = len(assignments[0]) if assignments else 0
        query, target, layer = [], [], []
        for layer_index, per_image in enumerate(assignments):
            for image, (rows, cols) in enumerate(per_image):
                query.append(rows + (layer_index * images + image) * queries)
                target.append(cols + image * targets_per_image)
                layer.append(np.full(len(rows), layer_index, dtype=np.int64))
        main_count = sum(len(rows) for rows, _ in assignments[0]) if assignments else 0
        flat = np.stack([np.concatenate(part) if part else np.zeros(0, np.int64) for part in (query, target, layer)])
        on_device = torch.from_numpy(flat.astype(np.int64, copy=False)).to(device)  # the one host-to-device copy
        return cls(*on_device.unbind(), main_count=main_count)
