"""Box conversions (torchvision's) and the GIoU (ours) give exactly the numbers of DETR's formulas, batched or not."""

import torch
import torchvision

from detr_ft.model.boxes import (
    cxcywh_to_xyxy,
    generalized_box_iou,
    paired_generalized_box_iou,
    xyxy_to_cxcywh,
)


def reference_generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The pairwise GIoU of [N, 4] and [M, 4] xyxy boxes as boxes.py computed it before batching (test-only copy)."""

    def area(boxes):
        return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)

    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = area(a)[:, None] + area(b)[None, :] - intersection
    iou = intersection / union.clamp(min=1e-12)
    enclosing = (torch.max(a[:, None, 2:], b[None, :, 2:]) - torch.min(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    enclosing_area = enclosing.prod(-1).clamp(min=1e-12)
    return iou - (enclosing_area - union) / enclosing_area


def _boxes_with_degenerate_ones(count=64, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.rand(count, 4, generator=generator)
    boxes[:8, 2:] = 0  # points
    boxes[8:16, 2] = 0  # lines
    boxes[16:20] = torch.tensor([1e-8, 1e-8, 1e-9, 1e-9])  # tiny
    return boxes


def test_conversions_equal_detrs_formulas_to_the_last_bit_degenerate_boxes_included():
    boxes = _boxes_with_degenerate_ones()
    cx, cy, w, h = boxes.unbind(-1)
    expected = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    assert torch.equal(cxcywh_to_xyxy(boxes), expected)
    x0, y0, x1, y1 = expected.unbind(-1)
    assert torch.equal(xyxy_to_cxcywh(expected), torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1))
    assert torch.equal(cxcywh_to_xyxy(boxes[None, None]), expected[None, None])  # any leading dims


def test_giou_equals_the_pre_batching_giou_to_the_last_bit_degenerate_and_inverted_boxes_included():
    boxes = cxcywh_to_xyxy(_boxes_with_degenerate_ones())
    inverted = boxes[:10].flip(-1)
    for a, b in ((boxes, boxes), (inverted, boxes), (boxes[:5], inverted)):
        assert torch.equal(generalized_box_iou(a, b, validate=False), reference_generalized_box_iou(a, b))


def test_giou_stays_finite_on_zero_area_boxes_where_torchvisions_is_nan():
    """Why boxes.py keeps its own GIoU: torchvision's divides by an unclamped union, so a point box gives NaN,
    which the matcher would report as a diverged model."""
    boxes = cxcywh_to_xyxy(_boxes_with_degenerate_ones())
    ours = generalized_box_iou(boxes, boxes)
    assert torch.isfinite(ours).all()
    assert torch.isnan(torchvision.ops.generalized_box_iou(boxes, boxes)).any()
    regular = boxes[20:]
    torch.testing.assert_close(ours[20:, 20:], torchvision.ops.generalized_box_iou(regular, regular))


def test_batched_and_paired_giou_equal_the_pairwise_matrix_exactly():
    generator = torch.Generator().manual_seed(1)
    a = cxcywh_to_xyxy(torch.rand(3, 2, 7, 4, generator=generator) * 0.5 + 0.1)
    b = cxcywh_to_xyxy(torch.rand(2, 5, 4, generator=generator) * 0.5 + 0.1)
    batched = generalized_box_iou(a, b[None])
    assert batched.shape == (3, 2, 7, 5)
    for i in range(3):
        for j in range(2):
            assert torch.equal(batched[i, j], generalized_box_iou(a[i, j], b[j]))
    pairs = a[0, 0, :5]
    assert torch.equal(paired_generalized_box_iou(pairs, b[0]), torch.diag(generalized_box_iou(pairs, b[0])))


def test_inverted_boxes_are_an_error_unless_validation_is_off():
    import pytest

    inverted = torch.tensor([[0.5, 0.5, 0.4, 0.6]])
    good = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    for giou in (generalized_box_iou, paired_generalized_box_iou):
        with pytest.raises(ValueError, match="x1 >= x0"):
            giou(inverted, good)
        assert torch.isfinite(giou(inverted, good, validate=False)).all()
