"""The confusion matrix on a hand-made case: hits, a class confusion, a missed object, false detections
(one in empty space, one a duplicate), detections under the score threshold, crowd regions left out."""

import numpy as np
import pytest

from detr_ft.data.coco import coco_from_dict
from detr_ft.training.evaluation.confusion import box_iou_xywh, confusion_matrix, write_confusion_csv
from detr_ft.training.evaluation.rank_gathering import pack_results

CAT, DOG = 12, 40


@pytest.fixture
def coco():
    truth = [  # (image, category, xywh, crowd)
        (1, CAT, [0, 0, 10, 10], 0),
        (1, DOG, [50, 50, 20, 20], 0),
        (1, CAT, [100, 0, 10, 10], 0),
        (2, DOG, [0, 0, 40, 40], 0),
        (2, CAT, [200, 200, 50, 50], 1),  # a crowd region: neither an object to find nor a false detection
    ]
    annotations = [
        {"id": i + 1, "image_id": image, "category_id": c, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}
        for i, (image, c, box, crowd) in enumerate(truth)
    ]
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 300, "height": 300} for i in (1, 2, 3)]
    categories = [{"id": CAT, "name": "cat"}, {"id": DOG, "name": "dog"}]
    return coco_from_dict({"images": images, "annotations": annotations, "categories": categories})


def detection(image, category, box, score):
    return {"image_id": image, "category_id": category, "bbox": box, "score": score}


def test_counts_with_background_row_and_column(coco):
    rows = pack_results(
        [
            detection(1, CAT, [1, 1, 10, 10], 0.9),  # the first cat: a hit
            detection(1, CAT, [51, 50, 20, 20], 0.8),  # the dog, called a cat: a confusion
            detection(1, DOG, [200, 200, 10, 10], 0.7),  # nothing there: a false dog
            detection(1, DOG, [100, 0, 10, 10], 0.3),  # the second cat, but under the threshold: it stays missed
            detection(2, DOG, [0, 0, 40, 40], 0.95),  # the dog: a hit
            detection(2, DOG, [0, 0, 39, 40], 0.9),  # the same dog again: a false dog (one-to-one)
            detection(3, CAT, [5, 5, 5, 5], 0.6),  # an image without objects: a false cat
        ]
    ).numpy()
    matrix = confusion_matrix(coco, rows, [1, 2, 3], [CAT, DOG], iou_threshold=0.5, score_threshold=0.5)
    #                  detected: cat dog background
    expected = np.array([[1, 0, 1],  # true cat: one found, one missed
                         [1, 1, 0],  # true dog: one found as a cat, one found
                         [1, 2, 0]])  # background: one false cat, two false dogs  # fmt: skip
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[:2].sum() == 4  # every non-crowd object is counted once

    only_image_3 = confusion_matrix(coco, rows, [3], [CAT, DOG])
    np.testing.assert_array_equal(only_image_3, [[0, 0, 0], [0, 0, 0], [1, 0, 0]])


def test_a_lower_threshold_lets_the_weak_detection_find_its_object(coco):
    rows = pack_results([detection(1, DOG, [100, 0, 10, 10], 0.3)]).numpy()
    matrix = confusion_matrix(coco, rows, [1], [CAT, DOG], score_threshold=0.2)
    np.testing.assert_array_equal(matrix, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])  # a cat found as a dog; 2 missed


def test_unknown_category_ids_are_refused(coco):
    rows = pack_results([detection(1, 99, [0, 0, 1, 1], 0.9)]).numpy()
    with pytest.raises(ValueError, match="99"):
        confusion_matrix(coco, rows, [1], [CAT, DOG])


def test_box_iou():
    iou = box_iou_xywh(np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 1, 1]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_the_csv_names_rows_and_columns(tmp_path):
    path = tmp_path / "confusion.csv"
    write_confusion_csv(path, np.array([[1, 0, 1], [1, 1, 0], [1, 2, 0]]), ["cat", "dog"])
    assert path.read_text().splitlines() == [
        "true \\ detected,cat,dog,background",
        "cat,1,0,1",
        "dog,1,1,0",
        "background,1,2,0",
    ]
