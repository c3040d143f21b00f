"""The sigmoid class head: K logits with the prior bias, focal matching that is optimal, Group DETR's groups, softmax
weights loading with the head re-initialised, and every new key refusing bad values by name."""

import itertools
import math

import pytest
import torch

from detr_ft.checkpoints.weight_loading import load_weights
from detr_ft.model import DETR, Backbone, HungarianMatcher, SetCriterion, Transformer
from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou
from tests.model.helpers import random_targets, tiny_detr

QUERIES = 6


def sigmoid_detr(num_classes: int = 3, query_groups: int = 1) -> DETR:
    torch.manual_seed(0)
    backbone = Backbone("resnet18", ["layer2", "layer3"], blocks_per_stage=[1, 1, 1, 1], last_stage="layer3")
    transformer = Transformer(32, 4, 1, 2, 64, dropout=0.0)
    return DETR(backbone, transformer, num_classes, QUERIES, query_groups=query_groups, classification="sigmoid")


def sigmoid_criterion(num_classes: int = 3, loss: str = "focal") -> SetCriterion:
    return SetCriterion(num_classes, HungarianMatcher(2, 5, 2, "sigmoid"), classification="sigmoid", class_loss=loss)


def test_the_sigmoid_head_has_k_logits_starting_at_the_prior_probability():
    model = sigmoid_detr(num_classes=3).eval()
    assert model.class_head.weight.shape[0] == 3
    assert torch.allclose(model.class_head.bias.sigmoid(), torch.full((3,), 0.01))
    outputs = model(torch.randn(2, 3, 64, 64))
    assert outputs["pred_logits"].shape == (2, QUERIES, 3)
    assert all(aux["pred_logits"].shape == (2, QUERIES, 3) for aux in outputs["aux_outputs"])
    assert tiny_detr(num_classes=3).class_head.weight.shape[0] == 4  # the paper's: K + 1


def _focal_cost(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[Q, K] logits, [N] labels -> [Q, N]: focal loss as a positive minus as a negative, from the formula."""
    p = logits.sigmoid()[:, labels]
    return 0.25 * (1 - p) ** 2 * -torch.log(p) - 0.75 * p**2 * -torch.log(1 - p)


def test_focal_matching_equals_a_brute_force_assignment_on_small_cases():
    matcher = HungarianMatcher(2, 5, 2, "sigmoid")
    for seed in range(6):
        generator = torch.Generator().manual_seed(seed)
        outputs = {
            "pred_logits": torch.randn(2, 5, 3, generator=generator) * 2,
            "pred_boxes": torch.rand(2, 5, 4, generator=generator) * 0.4 + 0.1,
        }
        targets = random_targets(2, max_boxes=3, seed=seed + 10)
        for image, (rows, cols) in enumerate(matcher(outputs, targets)):
            target, boxes = targets[image], outputs["pred_boxes"][image]
            cost = (
                2 * _focal_cost(outputs["pred_logits"][image], target["labels"])
                + 5 * torch.cdist(boxes, target["boxes"], p=1)
                - 2 * generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(target["boxes"]))
            )
            n = len(target["labels"])
            assert len(rows) == len(cols) == n
            best = min(
                (sum(cost[q, t] for t, q in enumerate(p)) for p in itertools.permutations(range(5), n)), default=0
            )
            assert float(cost[rows, cols].sum()) == pytest.approx(float(best), abs=1e-5)


def test_the_sigmoid_group_loss_is_the_mean_of_the_groups_losses():
    model = sigmoid_detr(query_groups=2).train()
    criterion = sigmoid_criterion(loss="ia_bce")
    targets = random_targets(2, max_boxes=3, seed=1)
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 64, 64))
        total = criterion(outputs, targets)
        per_group = []
        for group in range(2):
            rows = slice(group * QUERIES, (group + 1) * QUERIES)

            def part(layer, rows=rows):
                return {"pred_logits": layer["pred_logits"][:, rows], "pred_boxes": layer["pred_boxes"][:, rows]}

            per_group.append(
                criterion({**part(outputs), "aux_outputs": [part(a) for a in outputs["aux_outputs"]]}, targets)
            )
    for term in ("loss_ce", "loss_ce_0", "loss_bbox", "loss_giou"):
        torch.testing.assert_close(total[term], (per_group[0][term] + per_group[1][term]) / 2)


def test_a_grouped_sigmoid_checkpoint_loads_into_the_plain_model_with_equal_eval_outputs():
    grouped, plain = sigmoid_detr(query_groups=3).eval(), sigmoid_detr().eval()
    load_weights(plain, grouped.state_dict())
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(grouped(images)["pred_logits"], plain(images)["pred_logits"])


def test_official_softmax_weights_load_into_a_sigmoid_model_with_the_head_reinitialised(tmp_path):
    """Even when the row counts agree (K + 1 softmax rows = K' sigmoid rows), the softmax head's rows mean other
    things: the head keeps its prior initialisation and the report says why."""
    source = tiny_detr(num_classes=3)  # 4 rows: 3 classes + no-object
    official = {
        key.replace("backbone.body.", "backbone.0.body.").replace("class_head.", "class_embed."): value
        for key, value in source.state_dict().items()
    }
    torch.save({"model": {k.replace("box_head.", "bbox_embed."): v for k, v in official.items()}}, tmp_path / "o.pth")
    target = sigmoid_detr(num_classes=4)  # 4 rows too
    report = load_weights(target, tmp_path / "o.pth")
    assert sorted(report.reinitialized) == ["class_head.bias", "class_head.weight"]
    assert report.form_change == "softmax -> sigmoid" and "re-initialised (softmax -> sigmoid)" in report.summary()
    assert torch.allclose(target.class_head.bias, torch.full((4,), -math.log(99)))
    assert torch.equal(target.box_head.layers[0].weight, source.box_head.layers[0].weight)


def test_a_sigmoid_heads_class_rows_are_selected_without_a_no_object_row():
    source = sigmoid_detr(num_classes=5)
    target = sigmoid_detr(num_classes=2)
    report = load_weights(target, source.state_dict(), class_ids=[4, 1])
    assert not report.reinitialized and report.form_change is None
    assert torch.equal(target.class_head.weight, source.class_head.weight[[4, 1]])


FORMS = "['softmax', 'sigmoid']"


@pytest.mark.parametrize(
    "build, named, valid",
    [
        (lambda: DETR(*_parts(), 3, classification="sigmoidal"), "model.classification", FORMS),
        (lambda: HungarianMatcher(classification="focal"), "criterion.matcher.classification", FORMS),
        (lambda: SetCriterion(3, HungarianMatcher(), classification="logistic"), "criterion.classification", FORMS),
        (lambda: SetCriterion(3, HungarianMatcher(), class_loss="focal"), "criterion.class_loss", "['ce']"),
        (lambda: sigmoid_criterion(loss="ce"), "criterion.class_loss", "['focal', 'ia_bce', 'mal']"),
        (lambda: sigmoid_criterion(loss="varifocal"), "criterion.class_loss", "['focal', 'ia_bce', 'mal']"),
        (
            lambda: SetCriterion(3, HungarianMatcher(), classification="sigmoid", class_loss="focal"),
            "criterion.matcher.classification",
            "must follow the head's form",
        ),
        (
            lambda: SetCriterion(
                3, HungarianMatcher(classification="sigmoid"), class_targets="iou_aware", **_sigmoid("focal")
            ),
            "criterion.class_targets",
            "must stay hard",
        ),
    ],
)
def test_bad_values_of_the_new_keys_stop_naming_the_key_and_what_is_valid(build, named, valid):
    with pytest.raises(ValueError, match=named) as error:
        build()
    assert valid in str(error.value)


def test_a_model_and_criterion_of_different_forms_stop_at_the_first_loss_naming_both_keys():
    outputs = sigmoid_detr().train()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="criterion.classification=softmax expects 4.*model.classification"):
        SetCriterion(3, HungarianMatcher())(outputs, random_targets(1, seed=3))


def _parts():
    torch.manual_seed(0)
    backbone = Backbone("resnet18", ["layer2", "layer3"], blocks_per_stage=[1, 1, 1, 1], last_stage="layer3")
    return backbone, Transformer(32, 4, 1, 2, 64, dropout=0.0)


def _sigmoid(loss: str) -> dict:
    return {"classification": "sigmoid", "class_loss": loss}
