"""Batching images of different sizes: pad to the batch's largest, with a mask True on padding."""

import torch


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """[(image [3, h_i, w_i], target)] -> images [B, 3, H, W], mask [B, H, W] (True = padding), targets."""
    images, targets = zip(*batch, strict=True)
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    padded = images[0].new_zeros(len(images), 3, height, width)
    mask = torch.ones(len(images), height, width, dtype=torch.bool)
    for index, image in enumerate(images):
        padded[index, :, : image.shape[1], : image.shape[2]] = image
        mask[index, : image.shape[1], : image.shape[2]] = False
    return padded, mask, list(targets)
