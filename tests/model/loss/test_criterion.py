"""The set loss on hand-checked cases."""

import math

import pytest
import torch

from detr_ft.model import HungarianMatcher, SetCriterion
from tests.model.helpers import criterion


def _perfect_outputs(target, queries=4, classes=3):
    logits = torch.full((1, queries, classes + 1), -20.0)
    logits[0, :, classes] = 20.0  # every query says "no object" ...
    boxes = torch.full((1, queries, 4), 0.5)
    for index, (label, box) in enumerate(zip(target["labels"], target["boxes"], strict=True)):
        logits[0, index] = -20.0
        logits[0, index, label] = 20.0  # ... except one exact query per object
        boxes[0, index] = box
    return {"pred_logits": logits, "pred_boxes": boxes}


def test_perfect_predictions_give_zero_box_losses():
    target = {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])}
    losses = criterion()(_perfect_outputs(target), [target])
    assert losses["loss_bbox"].item() < 1e-6 and losses["loss_giou"].item() < 1e-6
    assert losses["loss_ce"].item() < 1e-6 and losses["class_error"].item() == 0


def test_empty_targets_leave_only_the_no_object_term():
    logits = torch.zeros(1, 4, 4)  # uniform over 3 classes + no object
    outputs = {"pred_logits": logits, "pred_boxes": torch.rand(1, 4, 4) * 0.5 + 0.25}
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    losses = criterion()(outputs, [empty])
    assert losses["loss_bbox"].item() == 0 and losses["loss_giou"].item() == 0
    assert math.isclose(losses["loss_ce"].item(), math.log(4), rel_tol=1e-5)
    assert math.isclose(losses["loss"].item(), math.log(4), rel_tol=1e-5)


@pytest.mark.parametrize("eos_coef", [0.1, 0.5, 1.0])
def test_eos_coef_weights_the_no_object_queries_as_the_paper_says(eos_coef):
    """One object, matched to query 0; queries 1-3 are "no object". The classification loss is the
    weighted mean: (1 * CE_0 + eos * (CE_1 + CE_2 + CE_3)) / (1 + 3 * eos), computed here by hand."""
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 4)
    boxes = torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1], [0.2, 0.8, 0.1, 0.1]]])
    target = {"labels": torch.tensor([2]), "boxes": boxes[0, :1].clone()}
    losses = SetCriterion(3, HungarianMatcher(0, 5, 2), eos_coef=eos_coef)(
        {"pred_logits": logits, "pred_boxes": boxes}, [target]
    )
    log_p = logits[0].log_softmax(-1)
    per_query = -torch.stack([log_p[0, 2], log_p[1, 3], log_p[2, 3], log_p[3, 3]])
    weights = torch.tensor([1.0, eos_coef, eos_coef, eos_coef])
    expected = (weights * per_query).sum() / weights.sum()
    assert losses["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses["loss_bbox"].item() < 1e-6  # query 0 sits exactly on the object: the matcher chose it


def test_weighted_total_counts_auxiliary_layers_alike():
    target = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    main = {"pred_logits": torch.zeros(1, 3, 4), "pred_boxes": torch.full((1, 3, 4), 0.4)}
    outputs = {**main, "aux_outputs": [dict(main)]}
    losses = criterion()(outputs, [target])
    single = losses["loss_ce"] + 5 * losses["loss_bbox"] + 2 * losses["loss_giou"]
    assert torch.isclose(losses["loss"], 2 * single)
    assert {"loss_ce_0", "loss_bbox_0", "loss_giou_0"} <= set(losses)


def test_box_losses_are_averaged_over_the_batchs_target_boxes_not_its_images():
    """Two images holding 1 and 3 objects, each matched query off by 0.1 in cx: the L1 term is the sum of
    |errors| over all 4 boxes divided by 4 (boxes), not by 2 (images)."""
    targets, logits, boxes = [], torch.full((2, 4, 4), -10.0), torch.full((2, 4, 4), 0.5)
    for image, count in enumerate((1, 3)):
        true = torch.tensor([[0.2 + 0.2 * i, 0.5, 0.1, 0.1] for i in range(count)])
        targets.append({"labels": torch.zeros(count, dtype=torch.int64), "boxes": true})
        boxes[image, :count] = true + torch.tensor([0.1, 0.0, 0.0, 0.0])
        logits[image, :count, 0] = 10.0
    losses = criterion()({"pred_logits": logits, "pred_boxes": boxes}, targets)
    assert losses["loss_bbox"].item() == pytest.approx(4 * 0.1 / 4, rel=1e-5)
