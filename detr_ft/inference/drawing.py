"""Boxes with class names drawn on an image: `predict`'s pictures and the training's prediction grid."""

import torch
from matplotlib import font_manager
from torchvision.utils import draw_bounding_boxes

PREDICTION_COLOUR = (230, 30, 30)

# torchvision's box drawing takes a TrueType file for labels that scale; matplotlib (a dependency) ships one.
LABEL_FONT = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))


def draw_boxes(image: torch.Tensor, boxes_xyxy: torch.Tensor, labels: list[str], colour) -> torch.Tensor:
    """image uint8 [3, H, W], boxes_xyxy [N, 4] in that image's pixels, one label per box (empty: none) ->
    uint8 [3, H, W] (a copy; the input is not modified). Labels sit inside the box's top-left corner on the
    box's colour; line width and text size grow with the image so both stay visible on a 4000-pixel photo
    as on a 128-pixel validation image."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"draw_boxes needs a uint8 [3, H, W] image, got {image.dtype} {tuple(image.shape)}")
    if len(labels) != len(boxes_xyxy):
        raise ValueError(f"draw_boxes got {len(boxes_xyxy)} boxes but {len(labels)} labels")
    if len(boxes_xyxy) == 0:
        return image.clone()
    shorter = min(image.shape[1:])
    return draw_bounding_boxes(
        image.cpu(),
        boxes_xyxy.detach().float().cpu(),
        labels=[label or None for label in labels],
        colors=tuple(colour),
        width=max(2, round(shorter / 200)),
        font=LABEL_FONT,
        font_size=max(12, round(shorter / 25)),
        label_colors=(255, 255, 255),
        fill_labels=True,
    )
