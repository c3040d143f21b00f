"""Training-only queries: Group DETR's groups and H-DETR's one-to-many block (model/query_groups.py), their loss
(model/loss/training_losses.py) and IoU-aware class targets (model/loss/iou_aware.py)."""

import pytest
import torch
import torch.nn.functional as F

from detr_ft.checkpoints.weight_loading import load_weights
from detr_ft.model import DETR, Backbone, HungarianMatcher, SetCriterion, Transformer
from detr_ft.model.loss.iou_aware import iou_aware_nll, matched_iou
from detr_ft.model.loss.matcher import PaddedTargets
from detr_ft.model.loss.training_losses import groups_as_images
from detr_ft.model.query_groups import MAX_TRAINING_QUERIES
from tests.model.helpers import random_targets

QUERIES = 6


def detr(
    query_groups: int = 1, one_to_many_queries: int = 0, init: str = "copy", fast_kernels: str = "auto", **kwargs
) -> DETR:
    torch.manual_seed(0)
    backbone = Backbone("resnet18", ["layer2", "layer3"], blocks_per_stage=[1, 1, 1, 1], last_stage="layer3")
    transformer = Transformer(32, 4, 1, 2, 64, dropout=0.0, **kwargs)
    return DETR(backbone, transformer, 3, QUERIES, True, fast_kernels, query_groups, one_to_many_queries, init)


IMAGES = torch.randn(2, 3, 64, 64)


def test_one_group_is_the_plain_model_with_nothing_added():
    plain, one = detr(), detr(query_groups=1)
    assert plain.state_dict().keys() == one.state_dict().keys()
    assert not any(key.startswith("training_queries") for key in one.state_dict())
    out = one.train()(IMAGES)
    assert "query_groups" not in out and out["pred_logits"].shape == (2, QUERIES, 4)
    assert torch.equal(out["pred_logits"], plain.train()(IMAGES)["pred_logits"])


@pytest.mark.parametrize(("normalize_before", "fast_kernels"), [(False, "auto"), (True, "auto"), (False, "off")])
def test_in_training_group_0_predicts_what_the_evaluation_model_predicts(normalize_before, fast_kernels):
    """The other groups and the one-to-many block are invisible to group 0 (and to each other)."""
    model = detr(query_groups=4, one_to_many_queries=5, fast_kernels=fast_kernels, normalize_before=normalize_before)
    with torch.no_grad():
        evaluated = model.eval()(IMAGES)
        trained = model.train()(IMAGES)
    assert evaluated["pred_logits"].shape == (2, QUERIES, 4)  # evaluation: group 0 alone
    assert trained["pred_logits"].shape == (2, 4 * QUERIES, 4) and trained["query_groups"] == 4
    assert trained["one_to_many"]["pred_boxes"].shape == (2, 5, 4)
    # Other shapes round differently (folded batch, longer GEMMs): 1e-5 apart at most; a leak is O(1e-2).
    torch.testing.assert_close(trained["pred_logits"][:, :QUERIES], evaluated["pred_logits"], rtol=0, atol=1e-5)
    torch.testing.assert_close(trained["pred_boxes"][:, :QUERIES], evaluated["pred_boxes"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("fast_kernels", ["auto", "off"])
def test_changing_one_groups_queries_changes_only_that_groups_outputs(fast_kernels):
    model = detr(query_groups=4, one_to_many_queries=5, fast_kernels=fast_kernels).train()
    with torch.no_grad():
        before = model(IMAGES)
        model.training_queries.groups[QUERIES : 2 * QUERIES] += torch.randn(QUERIES, 32)  # group 2 of 0..3
        after = model(IMAGES)
    changed = (before["pred_boxes"] - after["pred_boxes"]).abs().amax(dim=(0, 2)).reshape(4, QUERIES).amax(dim=1)
    assert changed[2] > 1e-3
    assert changed[[0, 1, 3]].max() < 1e-5  # rounding only (BLAS kernels may vary with buffer alignment)
    torch.testing.assert_close(after["one_to_many"]["pred_boxes"], before["one_to_many"]["pred_boxes"])


def test_each_group_is_matched_one_to_one_to_every_target():
    model = detr(query_groups=3).train()
    targets = random_targets(2, max_boxes=4, seed=3)
    with torch.no_grad():
        outputs = groups_as_images(model(IMAGES), 3)
    layers = torch.stack([outputs["pred_logits"]]), torch.stack([outputs["pred_boxes"]])
    matches = HungarianMatcher(1, 5, 2).assign(*layers, PaddedTargets(targets).images_repeated(3))[0]
    for image, target in enumerate(targets):
        for group in range(3):
            queries, matched_targets = matches[image * 3 + group]
            assert len(set(queries.tolist())) == len(queries) == min(QUERIES, len(target["labels"]))
            assert sorted(matched_targets.tolist()) == list(range(len(target["labels"])))


def test_the_group_loss_is_the_mean_of_the_groups_losses():
    model = detr(query_groups=2).train()
    criterion = SetCriterion(3, HungarianMatcher(1, 5, 2))
    targets = random_targets(2, max_boxes=3, seed=1)
    with torch.no_grad():
        outputs = model(IMAGES)
        total = criterion(outputs, targets)
        per_group = []
        for group in range(2):
            rows = slice(group * QUERIES, (group + 1) * QUERIES)

            def part(layer, rows=rows):
                return {"pred_logits": layer["pred_logits"][:, rows], "pred_boxes": layer["pred_boxes"][:, rows]}

            one = {**part(outputs), "aux_outputs": [part(aux) for aux in outputs["aux_outputs"]]}
            per_group.append(criterion(one, targets))
    for term in ("loss_bbox", "loss_giou", "loss_bbox_0"):
        torch.testing.assert_close(total[term], (per_group[0][term] + per_group[1][term]) / 2)


def test_one_to_many_loss_matches_the_targets_repeated_k_times_and_adds_to_the_total():
    model = detr(one_to_many_queries=8).train()
    criterion = SetCriterion(3, HungarianMatcher(1, 5, 2), one_to_many_k=2)
    targets = random_targets(2, max_boxes=3, seed=2)
    with torch.no_grad():
        outputs = model(IMAGES)
        losses = criterion(outputs, targets)
        repeated = [{"labels": t["labels"].repeat(2), "boxes": t["boxes"].repeat(2, 1)} for t in targets]
        extra = criterion(outputs["one_to_many"], repeated)
        main = criterion({k: outputs[k] for k in ("pred_logits", "pred_boxes", "aux_outputs")}, targets)
    torch.testing.assert_close(losses["one_to_many/loss"], extra["loss"])
    torch.testing.assert_close(losses["loss"], main["loss"] + extra["loss"])


def test_a_grouped_checkpoint_loads_into_the_plain_model_with_equal_eval_outputs():
    grouped = detr(query_groups=4, one_to_many_queries=5)
    with torch.no_grad():
        grouped.query_embed.weight.add_(1.0)  # differs from the plain model's own initialisation
    plain = detr()
    report = load_weights(plain, grouped.state_dict())
    assert not report.missing and not report.unexpected
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(IMAGES), grouped.eval()(IMAGES), rtol=0, atol=0)


@pytest.mark.parametrize("init", ["copy", "fresh"])
def test_a_plain_checkpoint_fills_the_extra_groups_as_stated(init):
    plain = detr()
    grouped = detr(query_groups=3, one_to_many_queries=4, init=init)
    initial = grouped.training_queries.groups.detach().clone()
    report = load_weights(grouped, plain.state_dict())
    group0 = plain.query_embed.weight
    if init == "copy":
        assert report.training_queries == grouped.query_groups_init == "copies of group 0"
        assert torch.equal(grouped.training_queries.groups, group0.repeat(2, 1))
        assert torch.equal(grouped.training_queries.one_to_many, group0[:4])
    else:
        assert report.training_queries == "fresh"
        assert torch.equal(grouped.training_queries.groups, initial)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"query_groups": 0}, "model.query_groups"),
        ({"one_to_many_queries": -1}, "model.one_to_many_queries"),
        ({"query_groups": MAX_TRAINING_QUERIES // QUERIES + 1}, str(MAX_TRAINING_QUERIES)),
        ({"init": "random"}, "model.query_groups_init must be one of ['copy', 'fresh']"),
    ],
)
def test_bad_training_query_values_stop_with_the_key_and_what_is_valid(kwargs, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        detr(**kwargs)


def test_an_unknown_class_target_stops_with_the_key_and_the_valid_values():
    with pytest.raises(ValueError, match=r"criterion\.class_targets must be one of \['hard', 'iou_aware'\]"):
        SetCriterion(3, HungarianMatcher(), class_targets="varifocal")
    with pytest.raises(ValueError, match=r"criterion\.one_to_many_k"):
        SetCriterion(3, HungarianMatcher(), one_to_many_k=0)


def test_iou_aware_targets_put_the_quality_on_the_class_and_the_rest_on_no_object():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 4, generator=generator)  # flat rows, as the criterion holds them
    target_classes = torch.full((8,), 3)
    rows = torch.tensor([1, 3, 6])
    target_classes[rows] = torch.tensor([0, 2, 1])
    pred = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.2], [0.6, 0.6, 0.3, 0.3]])
    true = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.35, 0.3, 0.1, 0.2], [0.2, 0.2, 0.1, 0.1]])
    nll = iou_aware_nll(logits, target_classes, rows, pred, true)

    soft = F.one_hot(target_classes, 4).float()
    p = logits.softmax(-1)
    for row, c, iou in zip(rows.tolist(), [0, 2, 1], matched_iou(pred, true), strict=True):
        quality = p[row, c] ** 0.25 * iou**0.75
        soft[row, c], soft[row, 3] = quality, 1 - quality
    torch.testing.assert_close(nll, -(soft * logits.log_softmax(-1)).sum(-1))
    assert matched_iou(pred, true)[0] == 1 and matched_iou(pred, true)[2] == 0
    # no match: exactly the cross-entropy
    none = iou_aware_nll(
        logits, torch.full((8,), 3), torch.zeros(0, dtype=torch.long), torch.empty(0, 4), torch.empty(0, 4)
    )
    torch.testing.assert_close(none, F.cross_entropy(logits, torch.full((8,), 3), reduction="none"))


def test_iou_aware_criterion_differs_from_hard_targets_only_in_the_class_term():
    model = detr().train()
    targets = random_targets(2, max_boxes=3, seed=4)
    with torch.no_grad():
        outputs = model(IMAGES)
        hard = SetCriterion(3, HungarianMatcher(1, 5, 2))(outputs, targets)
        soft = SetCriterion(3, HungarianMatcher(1, 5, 2), class_targets="iou_aware")(outputs, targets)
    assert torch.equal(hard["loss_bbox"], soft["loss_bbox"]) and torch.equal(hard["loss_giou_0"], soft["loss_giou_0"])
    assert not torch.allclose(hard["loss_ce"], soft["loss_ce"])


def test_one_group_through_the_aids_path_is_bit_identical_to_the_plain_criterion():
    model = detr().train()
    criterion = SetCriterion(3, HungarianMatcher(1, 5, 2))
    targets = random_targets(2, max_boxes=4, seed=5)
    with torch.no_grad():
        outputs = model(IMAGES)
        plain = criterion(outputs, targets)
        as_group = criterion({**outputs, "query_groups": 1}, targets)
    assert plain.keys() == as_group.keys()
    assert all(torch.equal(plain[key], as_group[key]) for key in plain)


def test_repeated_padded_targets_hold_each_images_boxes_k_times_then_padding():
    targets = [
        {"labels": torch.tensor([1, 2]), "boxes": torch.rand(2, 4)},
        {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)},
        {"labels": torch.tensor([0]), "boxes": torch.rand(1, 4)},
    ]
    repeated = PaddedTargets(targets).boxes_repeated(3)
    assert repeated.sizes == [6, 0, 3]
    for image, target in enumerate(targets):
        size = repeated.sizes[image]
        assert torch.equal(repeated.labels[image, :size], target["labels"].repeat(3))
        assert torch.equal(repeated.boxes[image, :size], target["boxes"].repeat(3, 1))
    tiled = PaddedTargets(targets).images_repeated(2)
    assert tiled.sizes == [2, 2, 0, 0, 1, 1] and torch.equal(tiled.boxes[3], tiled.boxes[2])


def test_matching_health_follows_group_0_one_row_per_image_with_every_aid_on():
    """The criterion returns group 0's main-layer matches per image (what matching health reads), not
    the folded groups' rows nor the one-to-many block's."""
    model = detr(query_groups=3, one_to_many_queries=4).train()
    criterion = SetCriterion(3, HungarianMatcher(1, 5, 2), one_to_many_k=2)
    targets = random_targets(2, max_boxes=3, seed=3)
    with torch.no_grad():
        outputs = model(IMAGES)
        _, grouped = criterion.losses_and_matches(outputs, targets)
        group0 = {key: outputs[key][:, :QUERIES] for key in ("pred_logits", "pred_boxes")}
        group0["aux_outputs"] = [{key: aux[key][:, :QUERIES] for key in group0} for aux in outputs["aux_outputs"]]
        _, plain = criterion.losses_and_matches(group0, targets)
    assert len(grouped) == len(targets)
    for (queries, objects), (queries0, objects0) in zip(grouped, plain, strict=True):
        assert queries.tolist() == queries0.tolist() and objects.tolist() == objects0.tolist()
