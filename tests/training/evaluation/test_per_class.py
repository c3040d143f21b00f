"""Per-class AP from the same COCOeval run as val/mAP: a perfect class scores 1, a missed one 0, a class
without objects has none; the CSV table and the summary's best/worst lines."""

import copy
import csv

import pytest

from detr_ft.data.coco import coco_from_dict
from detr_ft.training.evaluation.coco_evaluation import evaluate_coco
from detr_ft.training.evaluation.per_class import ClassAP, append_csv, summary_lines
from tests.training.evaluation.test_coco_evaluation import BOXES, CATEGORIES, IMAGES


@pytest.fixture
def coco_with_an_empty_class():
    annotations = [
        {"id": i + 1, "image_id": image, "category_id": category, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for i, (image, category, box) in enumerate(BOXES)
    ]
    categories = [*CATEGORIES, {"id": 77, "name": "bird"}]  # no bird in any image
    return coco_from_dict({"images": copy.deepcopy(IMAGES), "annotations": annotations, "categories": categories})


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_a_perfect_class_scores_one_and_a_missed_class_zero(coco_with_an_empty_class, backend):
    cats_only = [
        {"image_id": image, "category_id": 12, "bbox": list(map(float, box)), "score": 0.9}
        for image, category, box in BOXES
        if category == 12
    ]
    scores = evaluate_coco(coco_with_an_empty_class, cats_only, backend=backend)
    table = {row.class_name: row for row in scores.per_class}
    assert [row.category_id for row in scores.per_class] == [12, 40, 77]
    assert (table["cat"].AP, table["cat"].AP50, table["cat"].objects) == (pytest.approx(1.0), pytest.approx(1.0), 3)
    assert (table["dog"].AP, table["dog"].AP50, table["dog"].objects) == (0.0, 0.0, 2)
    assert (table["bird"].AP, table["bird"].AP50, table["bird"].objects) == (None, None, 0)
    assert scores.metrics["mAP"] == pytest.approx(0.5)  # val/mAP is the mean over classes with objects


def test_a_class_half_found_scores_between(coco_with_an_empty_class):
    # One dog of two, found first; a false dog below it: AP50 of dogs = 0.5 recall reached at precision 1.
    results = [
        {"image_id": 101, "category_id": 40, "bbox": [60.0, 20.0, 100.0, 70.0], "score": 0.9},
        {"image_id": 103, "category_id": 40, "bbox": [0.0, 0.0, 30.0, 30.0], "score": 0.8},
    ]
    scores = evaluate_coco(coco_with_an_empty_class, results, image_ids=[101, 102, 103], backend="pycocotools")
    dog = next(row for row in scores.per_class if row.class_name == "dog")
    assert dog.AP50 == pytest.approx(51 / 101)  # precision 1 on recall thresholds 0..0.5, then 0
    assert scores.metrics["mAP50"] == pytest.approx(dog.AP50 / 2)  # cats all missed


def test_no_detections_give_zero_for_classes_with_objects(coco_with_an_empty_class):
    scores = evaluate_coco(coco_with_an_empty_class, [], image_ids=[101])
    assert [(row.class_name, row.AP, row.objects) for row in scores.per_class] == [
        ("cat", 0.0, 1),
        ("dog", 0.0, 1),
        ("bird", None, 0),
    ]


def test_the_table_grows_by_one_block_per_epoch(tmp_path):
    table = [ClassAP(12, "cat", 1.0, 1.0, 3), ClassAP(77, "bird", None, None, 0)]
    path = tmp_path / "evaluation" / "per_class_ap.csv"
    append_csv(path, 0, table)
    append_csv(path, 1, table)
    rows = list(csv.DictReader(path.open()))
    assert [(r["epoch"], r["class_name"], r["AP"]) for r in rows] == [
        ("0", "cat", "1.0"),
        ("0", "bird", ""),
        ("1", "cat", "1.0"),
        ("1", "bird", ""),
    ]


def test_the_summary_shows_every_class_when_few_and_the_best_and_worst_when_many():
    few = [{"class_name": n, "AP": ap, "AP50": ap, "objects": 1} for n, ap in [("a", 0.2), ("b", 0.9), ("c", None)]]
    lines = summary_lines(few)
    assert [line.split()[0] for line in lines] == ["b", "a"]  # best first; the class without objects left out
    many = [{"class_name": f"class{i:02d}", "AP": i / 100, "AP50": i / 50, "objects": i} for i in range(80)]
    lines = summary_lines(many, shown=5)
    assert [line.split()[0] for line in lines] == [
        *(f"class{i}" for i in (79, 78, 77, 76, 75)),
        "...",
        *(f"class0{i}" for i in (4, 3, 2, 1, 0)),
    ]
    assert "70 more classes" in lines[5]


def test_ap_is_over_iou_thresholds_and_100_detections_per_image():
    # Three cats in one image, each found with IoU 0.54: a hit at IoU 0.5 only, and only if more than one
    # detection per image counts.
    boxes = [[0, 0, 20, 20], [100, 100, 40, 40], [200, 0, 60, 60]]
    annotations = [
        {"id": i + 1, "image_id": 1, "category_id": 12, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for i, b in enumerate(boxes)
    ]
    coco = coco_from_dict(
        {
            "images": [{"id": 1, "file_name": "a.jpg", "width": 300, "height": 300}],
            "annotations": annotations,
            "categories": [{"id": 12, "name": "cat"}],
        }
    )
    shifted = [
        {"image_id": 1, "category_id": 12, "bbox": [x + 0.3 * w, y, w, h], "score": 0.9 - i / 10}
        for i, (x, y, w, h) in enumerate(boxes)
    ]
    for backend in ("pycocotools", "faster_coco_eval"):
        (cat,) = evaluate_coco(coco, shifted, backend=backend).per_class
        assert cat.AP50 == pytest.approx(1.0)
        assert cat.AP == pytest.approx(0.1)  # 1 of the 10 IoU thresholds
