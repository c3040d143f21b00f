"""The batched matcher and set loss (all images and decoder layers at once) equal the per-image implementation they
replaced: the same matches, the same loss terms within 1e-6 relative, the same gradients."""

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from detr_ft.model import HungarianMatcher, SetCriterion
from detr_ft.model.boxes import cxcywh_to_xyxy
from tests.model.test_boxes import reference_generalized_box_iou as generalized_box_iou

NUM_CLASSES = 5
KEYS = ("pred_logits", "pred_boxes")


# ---- the reference: the per-image, per-layer implementation before batching (test-only copy) ---------------------


def reference_match(outputs: dict, targets: list[dict], weights=(1.0, 5.0, 2.0)) -> list:
    matches = []
    probs = outputs["pred_logits"].float().softmax(-1)
    for b, target in enumerate(targets):
        pred_boxes, labels, boxes = outputs["pred_boxes"][b].float(), target["labels"], target["boxes"].float()
        cost = -weights[0] * probs[b][:, labels]
        cost = cost + weights[1] * torch.cdist(pred_boxes, boxes, p=1)
        if len(labels):
            giou = generalized_box_iou(cxcywh_to_xyxy(pred_boxes), cxcywh_to_xyxy(boxes))
            cost = cost - weights[2] * giou
        rows, cols = linear_sum_assignment(cost.detach().numpy())
        matches.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return matches


def reference_layer_losses(outputs, targets, matches, num_boxes, class_weight) -> dict:
    logits = outputs["pred_logits"]
    target_classes = torch.full(logits.shape[:2], NUM_CLASSES, dtype=torch.int64)
    for b, (query_idx, target_idx) in enumerate(matches):
        target_classes[b, query_idx] = targets[b]["labels"][target_idx]
    loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, weight=class_weight)
    pred = torch.cat([outputs["pred_boxes"][b, q] for b, (q, _) in enumerate(matches)])
    true = torch.cat([targets[b]["boxes"][t] for b, (_, t) in enumerate(matches)]).to(pred)
    loss_bbox = F.l1_loss(pred, true, reduction="sum") / num_boxes
    if len(pred):
        giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(true)))
        loss_giou = (1 - giou).sum() / num_boxes
    else:
        loss_giou = pred.sum() * 0
    return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}


def reference_set_loss(outputs: dict, targets: list[dict], eos_coef=0.1, weights=None) -> dict:
    weights = weights or {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    class_weight = torch.ones(NUM_CLASSES + 1)
    class_weight[-1] = eos_coef
    num_boxes = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
    main_matches = reference_match(outputs, targets)
    losses = reference_layer_losses(outputs, targets, main_matches, num_boxes, class_weight)
    predicted = torch.cat([outputs["pred_logits"][b, q].argmax(-1) for b, (q, _) in enumerate(main_matches)])
    true = torch.cat([targets[b]["labels"][t] for b, (_, t) in enumerate(main_matches)])
    losses["class_error"] = (
        torch.tensor(0.0) if len(true) == 0 else 100.0 * (1 - (predicted == true).float().mean()).detach()
    )
    for index, aux in enumerate(outputs.get("aux_outputs", [])):
        aux_losses = reference_layer_losses(aux, targets, reference_match(aux, targets), num_boxes, class_weight)
        losses.update({f"{k}_{index}": v for k, v in aux_losses.items()})
    base = lambda name: name.rsplit("_", 1)[0] if name[-1].isdigit() else name  # noqa: E731
    losses["loss"] = sum(weights[base(n)] * v for n, v in losses.items() if base(n) in weights)
    return losses


# ---- cases ----------------------------------------------------------------------------------------------------------


def _layer(batch, queries, generator):
    return {
        "pred_logits": torch.randn(batch, queries, NUM_CLASSES + 1, generator=generator) * 2,
        "pred_boxes": torch.rand(batch, queries, 4, generator=generator) * 0.4 + 0.1,
    }


def _targets(counts, generator):
    targets = []
    for count in counts:
        centres = torch.rand(count, 2, generator=generator) * 0.6 + 0.2
        sides = torch.rand(count, 2, generator=generator) * 0.3 + 0.02
        labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
        targets.append({"labels": labels, "boxes": torch.cat([centres, sides], dim=1)})
    return targets


CASES = {
    "empty_images": (10, [0, 3, 0]),
    "all_empty": (10, [0, 0]),
    "one_box": (10, [1]),
    "many_boxes": (30, [25, 2, 12, 30]),
    "mixed": (20, [0, 1, 7, 20]),
}


def _case(name, aux_layers, seed=0):
    queries, counts = CASES[name]
    generator = torch.Generator().manual_seed(seed)
    outputs = _layer(len(counts), queries, generator)
    outputs["aux_outputs"] = [_layer(len(counts), queries, generator) for _ in range(aux_layers)]
    if not aux_layers:
        del outputs["aux_outputs"]
    for layer in [outputs, *outputs.get("aux_outputs", [])]:
        for key in KEYS:
            layer[key].requires_grad_(True)
    return outputs, _targets(counts, generator)


@pytest.mark.parametrize("aux_layers", [0, 5])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_equal_the_per_image_matcher(name, aux_layers):
    outputs, targets = _case(name, aux_layers)
    layers = [outputs, *outputs.get("aux_outputs", [])]
    batched = HungarianMatcher(1, 5, 2).match_layers(layers, targets)
    for layer, matches in zip(layers, batched, strict=True):
        for (rows, cols), (ref_rows, ref_cols) in zip(matches, reference_match(layer, targets), strict=True):
            assert rows.dtype == cols.dtype == torch.int64
            assert torch.equal(rows, ref_rows) and torch.equal(cols, ref_cols)


@pytest.mark.parametrize("aux_layers", [0, 5])
@pytest.mark.parametrize("name", sorted(CASES))
def test_losses_and_gradients_equal_the_per_image_set_loss(name, aux_layers):
    outputs, targets = _case(name, aux_layers, seed=3)
    losses = SetCriterion(NUM_CLASSES, HungarianMatcher(1, 5, 2), eos_coef=0.1)(outputs, targets)
    reference = reference_set_loss(outputs, targets)
    assert list(losses) == list(reference)  # the same terms in the same order
    for term, value in reference.items():
        assert losses[term].dtype == torch.float32
        assert losses[term].item() == pytest.approx(value.item(), rel=1e-6, abs=1e-7), term
    leaves = [tensor for layer in [outputs, *outputs.get("aux_outputs", [])] for tensor in (layer[k] for k in KEYS)]
    ours = torch.autograd.grad(losses["loss"], leaves)
    theirs = torch.autograd.grad(reference["loss"], leaves)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-7)


def test_a_term_left_out_of_the_weights_does_not_count():
    outputs, targets = _case("mixed", 2)
    weights = {"loss_ce": 1.0, "loss_giou": 3.0}
    losses = SetCriterion(NUM_CLASSES, HungarianMatcher(1, 5, 2), weights=weights)(outputs, targets)
    reference = reference_set_loss(outputs, targets, weights=weights)
    assert losses["loss"].item() == pytest.approx(reference["loss"].item(), rel=1e-6)
