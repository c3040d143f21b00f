"""The sigmoid head's losses against a test-only implementation written from the papers' formulas, one (query,
class) pair at a time in plain Python floats: RetinaNet's focal loss, RF-DETR's IoU-aware BCE, DEIM's MAL."""

import math

import pytest
import torch

from detr_ft.model import HungarianMatcher, SetCriterion
from detr_ft.model.loss.iou_aware import matched_iou
from detr_ft.model.loss.sigmoid_losses import sigmoid_class_loss
from tests.model.helpers import random_targets


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def reference_pair_loss(loss: str, logit: float, positive: bool, iou: float) -> float:
    """One (query, class) pair's loss, from the formulas."""
    p = _sigmoid(logit)
    if loss == "focal":  # FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t), alpha 0.25, gamma 2
        return -0.25 * (1 - p) ** 2 * math.log(p) if positive else -0.75 * p**2 * math.log(1 - p)
    if loss == "ia_bce":  # positives: target t = max(p^0.25 IoU^0.75, 0.01); negatives weighted p^2
        t = max(p**0.25 * iou**0.75, 0.01)
        return -t * math.log(p) - (1 - t) * math.log(1 - p) if positive else -(p**2) * math.log(1 - p)
    q = iou**1.5  # MAL: positives: target IoU^1.5; negatives weighted p^1.5
    return -q * math.log(p) - (1 - q) * math.log(1 - p) if positive else -(p**1.5) * math.log(1 - p)


def reference_rows(loss, logits, rows, labels, ious) -> list[float]:
    positives = {(r, c): iou for r, c, iou in zip(rows.tolist(), labels.tolist(), ious.tolist(), strict=True)}
    return [
        sum(
            reference_pair_loss(loss, logits[r, c].item(), (r, c) in positives, positives.get((r, c), 0.0))
            for c in range(logits.shape[1])
        )
        for r in range(logits.shape[0])
    ]


@pytest.mark.parametrize("loss", ["focal", "ia_bce", "mal"])
def test_each_rows_loss_is_the_papers_formula_summed_over_the_classes(loss):
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 4, generator=generator, dtype=torch.float64) * 3
    rows, labels = torch.tensor([0, 2, 5, 6]), torch.tensor([1, 3, 0, 2])
    ious = torch.tensor([0.9, 0.4, 0.0, 0.02], dtype=torch.float64)  # 0 and a tiny IoU: ia_bce's 0.01 floor
    ours = sigmoid_class_loss(loss, logits, rows, labels, ious)
    assert ours.shape == (7,)
    assert ours.tolist() == pytest.approx(reference_rows(loss, logits, rows, labels, ious), rel=1e-9)


@pytest.mark.parametrize("loss", ["focal", "ia_bce", "mal"])
def test_the_criterions_class_term_is_every_layers_pair_losses_over_the_box_count(loss):
    """loss_ce of each decoder layer = the sum of its pairs' losses / the batch's boxes (Deformable DETR's and
    RF-DETR's normalisation), with the criterion's own matches; the quality targets use the matched boxes' IoU."""
    criterion = SetCriterion(3, HungarianMatcher(2, 5, 2, "sigmoid"), classification="sigmoid", class_loss=loss)
    generator = torch.Generator().manual_seed(5)
    layer = lambda: {  # noqa: E731
        "pred_logits": torch.randn(2, 5, 3, generator=generator),
        "pred_boxes": torch.rand(2, 5, 4, generator=generator) * 0.4 + 0.2,
    }
    outputs = {**layer(), "aux_outputs": [layer()]}
    targets = random_targets(2, max_boxes=3, seed=2)
    num_boxes = max(sum(len(t["labels"]) for t in targets), 1)
    losses = criterion(outputs, targets)
    matcher = criterion.matcher
    for name, out in (("loss_ce", outputs), ("loss_ce_0", outputs["aux_outputs"][0])):
        matches = matcher(out, targets)
        rows = torch.cat([q + image * 5 for image, (q, _) in enumerate(matches)])
        labels = torch.cat([targets[image]["labels"][t] for image, (_, t) in enumerate(matches)])
        pred = torch.cat([out["pred_boxes"][image][q] for image, (q, _) in enumerate(matches)])
        true = torch.cat([targets[image]["boxes"][t] for image, (_, t) in enumerate(matches)])
        ious = matched_iou(pred, true)
        expected = sum(reference_rows(loss, out["pred_logits"].flatten(0, 1), rows, labels, ious)) / num_boxes
        assert losses[name].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", ["ia_bce", "mal"])
def test_the_iou_in_a_quality_target_carries_no_gradient_to_the_boxes(loss):
    """The class term scores boxes but never moves them: the IoU in its target is detached (as RF-DETR, DEIM)."""
    criterion = SetCriterion(3, HungarianMatcher(2, 5, 2, "sigmoid"), classification="sigmoid", class_loss=loss)
    logits = torch.randn(1, 4, 3, requires_grad=True)
    boxes = torch.full((1, 4, 4), 0.3).requires_grad_()
    target = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.35, 0.3, 0.2, 0.3]])}]
    criterion({"pred_logits": logits, "pred_boxes": boxes}, target)["loss_ce"].backward()
    assert boxes.grad is None or not boxes.grad.any()
    assert logits.grad.abs().sum() > 0
