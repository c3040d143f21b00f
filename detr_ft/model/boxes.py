"""Box formats and the generalized IoU of the DETR paper. Boxes are [..., 4] tensors."""

import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(center x, center y, width, height) -> (x0, y0, x1, y1)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes [N, 4] -> [N]."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of every pair of xyxy boxes: a [N, 4], b [M, 4] -> ([N, M], [N, M])."""
    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - intersection
    return intersection / union.clamp(min=1e-12), union


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """GIoU of every pair of xyxy boxes, a [N, 4] and b [M, 4] -> [N, M], in [-1, 1].

    Degenerate boxes (x1 < x0) would make GIoU meaningless, so they are an error rather than a NaN (on an
    accelerator a device-side assertion: checking on the host would stall every training step).
    `validate=False` skips that check for a caller that checks the result instead: NaN boxes then give NaN,
    which the matcher reports as divergence.
    """
    if validate:
        valid = (a[:, 2:] >= a[:, :2]).all() & (b[:, 2:] >= b[:, :2]).all()
        message = "generalized_box_iou needs boxes with x1 >= x0 and y1 >= y0"
        if valid.device.type == "cpu":
            if not valid:
                raise ValueError(message)
        else:
            torch._assert_async(valid, message)
    iou, union = pairwise_iou(a, b)
    enclosing = (torch.max(a[:, None, 2:], b[None, :, 2:]) - torch.min(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    enclosing_area = enclosing.prod(-1).clamp(min=1e-12)
    return iou - (enclosing_area - union) / enclosing_area
