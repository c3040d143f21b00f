"""COCO metrics: perfect detections score 1, worse ones less; file category ids, empty results."""

import copy

import pytest
import torch

from detr_ft.data.categories import CategoryMap
from detr_ft.data.coco import coco_from_dict
from detr_ft.training.evaluation.coco_evaluation import DetectionEvaluator
from detr_ft.training.evaluation.coco_scores import METRICS, evaluate_coco

# Category ids that start neither at 0 nor at 1 and are not contiguous, as in real files.
CATEGORIES = [{"id": 12, "name": "cat"}, {"id": 40, "name": "dog"}]
IMAGES = [
    {"id": 101, "file_name": "a.jpg", "width": 200, "height": 100},
    {"id": 102, "file_name": "b.jpg", "width": 300, "height": 300},
    {"id": 103, "file_name": "c.jpg", "width": 640, "height": 480},
]
# xywh boxes: small (< 32^2), medium and large ones, so every size bucket has objects.
BOXES = [
    (101, 12, [10, 10, 20, 20]),
    (101, 40, [60, 20, 100, 70]),
    (102, 40, [50, 50, 150, 200]),
    (102, 12, [5, 200, 25, 25]),
    (103, 12, [100, 100, 400, 300]),
]


@pytest.fixture
def coco():
    annotations = [
        {"id": i + 1, "image_id": image, "category_id": category, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for i, (image, category, box) in enumerate(BOXES)
    ]
    data = {"images": copy.deepcopy(IMAGES), "annotations": annotations, "categories": CATEGORIES}
    return coco_from_dict(data)


def perfect_results() -> list[dict]:
    return [
        {"image_id": image, "category_id": category, "bbox": list(map(float, box)), "score": 0.9}
        for image, category, box in BOXES
    ]


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_perfect_detections_score_one_and_stay_quiet(coco, capsys, backend):
    metrics = evaluate_coco(coco, perfect_results(), backend=backend).metrics
    assert set(metrics) == {"mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "AR100"}
    for name, value in metrics.items():
        assert value == pytest.approx(1.0), name
    assert capsys.readouterr().out == ""  # pycocotools' progress and table are kept out of the log


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_shifted_boxes_lower_the_scores(coco, backend):
    shifted = perfect_results()
    for result in shifted:
        x, y, w, h = result["bbox"]
        result["bbox"] = [x + 0.3 * w, y, w, h]  # IoU 0.54: a hit at 0.5, a miss from 0.55 on
    metrics = evaluate_coco(coco, shifted, backend=backend).metrics
    assert metrics["mAP50"] == pytest.approx(1.0)
    assert metrics["mAP75"] == pytest.approx(0.0)
    assert 0.0 < metrics["mAP"] < 0.2


def test_labels_instead_of_file_category_ids_score_zero(coco):
    # What a forgotten label -> category id mapping gives: 0 and 1 are not the file's ids 12 and 40.
    wrong = [{**r, "category_id": [12, 40].index(r["category_id"])} for r in perfect_results()]
    assert evaluate_coco(coco, wrong).metrics["mAP"] == 0.0


def test_images_without_results_count_as_misses(coco):
    partial = [r for r in perfect_results() if r["image_id"] != 103]
    everywhere = evaluate_coco(coco, partial).metrics
    assert everywhere["AR100"] == pytest.approx((2 / 3 + 1) / 2)  # per category: 2 of 3 cats, every dog
    assert everywhere["mAP_large"] < 1.0
    assert evaluate_coco(coco, partial, image_ids=[101, 102]).metrics["mAP"] == pytest.approx(1.0)


def test_empty_results_give_zeros(coco):
    assert evaluate_coco(coco, []).metrics == dict.fromkeys(METRICS, 0.0)


def test_results_for_unknown_images_are_refused(coco):
    with pytest.raises(ValueError, match="999"):
        evaluate_coco(coco, [{"image_id": 999, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 1.0}])


def model_outputs(image_records: list[dict], category_map: CategoryMap, queries: int = 4):
    """Outputs a perfect model would give for these images (normalised cxcywh, confident class; spare
    queries say "no object"), and the targets the data module would give."""
    logits = torch.full((len(image_records), queries, 3), -10.0)
    logits[..., 2] = 10.0
    boxes = torch.full((len(image_records), queries, 4), 0.5)
    targets = []
    for b, image in enumerate(image_records):
        width, height = image["width"], image["height"]
        own = [(category, box) for image_id, category, box in BOXES if image_id == image["id"]]
        for q, (category, (x, y, w, h)) in enumerate(own):
            logits[b, q] = torch.tensor([-10.0, -10.0, -10.0])
            logits[b, q, category_map.label_of(category)] = 10.0
            boxes[b, q] = torch.tensor([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
        targets.append({"image_id": torch.tensor(image["id"]), "orig_size": torch.tensor([height, width])})
    return {"pred_logits": logits, "pred_boxes": boxes}, targets


def test_evaluator_scores_model_outputs_in_original_pixels_and_file_ids(coco):
    category_map = CategoryMap.from_coco_categories(CATEGORIES)  # labels 0 (id 12), 1 (id 40)
    evaluator = DetectionEvaluator(category_map)
    evaluator.update(*model_outputs(IMAGES[:2], category_map))
    evaluator.update(*model_outputs(IMAGES[2:], category_map))
    assert len(evaluator.results) == 3 * 4  # every query of every image is a ranked candidate
    assert {r["category_id"] for r in evaluator.results} == {12, 40}
    assert evaluator.evaluate(coco).metrics["mAP"] == pytest.approx(1.0)

    evaluator.reset()
    evaluator.update(*model_outputs(IMAGES[:2], category_map))
    assert evaluator.evaluate(coco).metrics["mAP"] == pytest.approx(1.0)  # scored on the images it saw
    assert evaluator.evaluate(coco, all_images=True).metrics["AR100"] == pytest.approx((2 / 3 + 1) / 2)  # 103 missed
