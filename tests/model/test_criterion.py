"""The set loss on hand-checked cases."""

import math

import torch

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


def test_weighted_total_counts_auxiliary_layers_alike():
    target = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    main = {"pred_logits": torch.zeros(1, 3, 4), "pred_boxes": torch.full((1, 3, 4), 0.4)}
    outputs = {**main, "aux_outputs": [dict(main)]}
    losses = criterion()(outputs, [target])
    single = losses["loss_ce"] + 5 * losses["loss_bbox"] + 2 * losses["loss_giou"]
    assert torch.isclose(losses["loss"], 2 * single)
    assert {"loss_ce_0", "loss_bbox_0", "loss_giou_0"} <= set(losses)
