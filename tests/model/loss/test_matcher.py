"""The Hungarian matcher is optimal and equals the reference's cross-batch formulation."""

import itertools

import torch

from detr_ft.model import HungarianMatcher
from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou
from tests.model.helpers import random_targets


def _outputs(batch: int, queries: int, classes: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "pred_logits": torch.randn(batch, queries, classes + 1, generator=generator),
        "pred_boxes": torch.rand(batch, queries, 4, generator=generator) * 0.4 + 0.1,
    }


def _cost(outputs, b, target, weights=(1, 5, 2)) -> torch.Tensor:
    probs = outputs["pred_logits"][b].softmax(-1)[:, target["labels"]]
    l1 = torch.cdist(outputs["pred_boxes"][b], target["boxes"], p=1)
    giou = generalized_box_iou(cxcywh_to_xyxy(outputs["pred_boxes"][b]), cxcywh_to_xyxy(target["boxes"]))
    return -weights[0] * probs + weights[1] * l1 - weights[2] * giou


def test_matching_is_optimal_against_brute_force():
    for seed in range(5):
        outputs, targets = _outputs(2, 5, 3, seed), random_targets(2, max_boxes=3, seed=seed)
        for b, (rows, cols) in enumerate(HungarianMatcher()(outputs, targets)):
            cost = _cost(outputs, b, targets[b])
            n = cost.shape[1]
            assert len(rows) == len(cols) == n
            best = (
                min(
                    sum(cost[q, t] for q, t in zip(perm, range(n), strict=True))
                    for perm in itertools.permutations(range(5), n)
                )
                if n
                else 0
            )
            assert abs(float(cost[rows, cols].sum()) - float(best)) < 1e-5


def test_same_total_cost_as_the_naive_cross_batch_matrix():
    from scipy.optimize import linear_sum_assignment

    outputs, targets = _outputs(3, 6, 4, 7), random_targets(3, num_classes=4, max_boxes=4, seed=7)
    # The reference computes all queries of the batch against all targets of the batch, then slices.
    flat_probs = outputs["pred_logits"].flatten(0, 1).softmax(-1)
    flat_boxes = outputs["pred_boxes"].flatten(0, 1)
    all_labels = torch.cat([t["labels"] for t in targets])
    all_boxes = torch.cat([t["boxes"] for t in targets])
    big = (
        -flat_probs[:, all_labels]
        + 5 * torch.cdist(flat_boxes, all_boxes, p=1)
        - 2 * generalized_box_iou(cxcywh_to_xyxy(flat_boxes), cxcywh_to_xyxy(all_boxes))
    ).view(3, 6, -1)
    sizes = [len(t["labels"]) for t in targets]
    ours = HungarianMatcher()(outputs, targets)
    for b, chunk in enumerate(big.split(sizes, -1)):
        rows, cols = linear_sum_assignment(chunk[b].numpy())
        naive = float(chunk[b][rows, cols].sum())
        ours_cost = float(_cost(outputs, b, targets[b])[ours[b][0], ours[b][1]].sum())
        assert abs(naive - ours_cost) < 1e-5


def test_images_without_targets_match_nothing():
    outputs = _outputs(2, 4, 2, 0)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    matches = HungarianMatcher()(outputs, [empty, empty])
    assert [len(rows) for rows, _ in matches] == [0, 0]


def test_non_finite_predictions_are_reported_as_such_not_as_degenerate_boxes():
    """A diverged model's NaN boxes (or inf logits) fail with NonFinitePredictions, never with GIoU's
    `x1 >= x0` error that users of DETR codebases misread."""
    import pytest

    from detr_ft.model.loss.matcher import NonFinitePredictions

    targets = random_targets(2, max_boxes=3, seed=1)
    targets[1]["boxes"] = targets[0]["boxes"][:1] if len(targets[0]["boxes"]) else torch.full((1, 4), 0.3)
    targets[1]["labels"] = torch.zeros(1, dtype=torch.int64)
    for key, value in (("pred_boxes", float("nan")), ("pred_logits", float("inf"))):
        outputs = _outputs(2, 5, 3, seed=0)
        outputs[key][1, 2, 0] = value
        with pytest.raises(NonFinitePredictions, match="not finite"):
            HungarianMatcher()(outputs, targets)
