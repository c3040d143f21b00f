"""Box formats and the generalized IoU of the DETR paper. Boxes are [..., 4] tensors.

The format conversions are torchvision's box_convert (the same arithmetic as DETR's: equal to the last bit, also on
degenerate boxes). The GIoU is ours: torchvision's divides by the union and the enclosing area unclamped, so a
zero-area box (a point, or a target shrunk to nothing by a crop) gives NaN where ours gives a finite value, and
the matcher reads NaN costs as a diverged model.
"""

import torch
from torchvision.ops import box_convert


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(center x, center y, width, height) -> (x0, y0, x1, y1)."""
    return box_convert(boxes, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "xyxy", "cxcywh")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes [..., 4] -> [...]."""
    return (boxes[..., 2:] - boxes[..., :2]).clamp(min=0).prod(-1)  # width * height, in 5 ops rather than 9


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of every pair of xyxy boxes: a [..., N, 4], b [..., M, 4] -> ([..., N, M], [..., N, M])."""
    return paired_iou(a[..., :, None, :], b[..., None, :, :])


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """GIoU of every pair of xyxy boxes, a [..., N, 4] and b [..., M, 4] -> [..., N, M], in [-1, 1].

    Degenerate boxes (x1 < x0) would make GIoU meaningless, so they are an error rather than a NaN (on an
    accelerator a device-side assertion: checking on the host would stall every training step).
    `validate=False` skips that check for a caller that checks the result instead: NaN boxes then give NaN,
    which the matcher reports as divergence.
    """
    if validate:
        _check_not_degenerate(a, b)
    return _giou(a[..., :, None, :], b[..., None, :, :])


def paired_generalized_box_iou(a: torch.Tensor, b: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """GIoU of the boxes a[i] and b[i] only: a, b [..., 4] -> [...]. The same numbers as the diagonal of
    `generalized_box_iou(a, b)` (the same arithmetic per pair) without computing the N x N others."""
    if validate:
        _check_not_degenerate(a, b)
    return _giou(a, b)


def _check_not_degenerate(a: torch.Tensor, b: torch.Tensor) -> None:
    valid = (a[..., 2:] >= a[..., :2]).all() & (b[..., 2:] >= b[..., :2]).all()
    message = "generalized_box_iou needs boxes with x1 >= x0 and y1 >= y0"
    if valid.device.type == "cpu":
        if not valid:
            raise ValueError(message)
    else:
        torch._assert_async(valid, message)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of boxes a and b, broadcast against each other ([..., 4] each). Batched and paired, which
    torchvision.ops.box_iou ([N, 4] x [M, 4] only) is not; GIoU builds on it."""
    top_left = torch.max(a[..., :2], b[..., :2])
    bottom_right = torch.min(a[..., 2:], b[..., 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(a) + box_area(b) - intersection
    return intersection / union.clamp(min=1e-12), union


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    iou, union = paired_iou(a, b)
    enclosing = (torch.max(a[..., 2:], b[..., 2:]) - torch.min(a[..., :2], b[..., :2])).clamp(min=0)
    enclosing_area = enclosing.prod(-1).clamp(min=1e-12)
    return iou - (enclosing_area - union) / enclosing_area
