"""Model outputs -> detections: best real class per query, boxes in original pixels, COCO results in the
annotation file's category ids."""

import math

import pytest
import torch

from detr_ft.data.categories import CategoryMap
from detr_ft.model.postprocess import postprocess, to_coco_results


def test_postprocess_drops_no_object_and_scales_boxes_to_each_image():
    # 2 images, 2 queries, K = 2 real classes + no object (last column).
    logits = torch.tensor(
        [
            [[2.0, 0.0, 0.0], [0.0, 1.0, 5.0]],  # query 1: "no object" wins, but class 1 is its best real class
            [[0.0, 3.0, 0.0], [1.0, 1.0, 1.0]],
        ]
    )
    boxes = torch.tensor(
        [
            [[0.5, 0.5, 1.0, 1.0], [0.25, 0.5, 0.5, 0.2]],
            [[0.5, 0.25, 0.2, 0.5], [0.1, 0.1, 0.2, 0.2]],
        ]
    )
    sizes = [torch.tensor([100, 200]), torch.tensor([50, 40])]  # (h, w) of each original image
    first, second = postprocess({"pred_logits": logits, "pred_boxes": boxes}, sizes)

    probabilities = logits.softmax(-1)
    assert first["labels"].tolist() == [0, 1]
    assert second["labels"].tolist() == [1, 0]
    torch.testing.assert_close(first["scores"], torch.stack([probabilities[0, 0, 0], probabilities[0, 1, 1]]))
    # The no-object probability is not renormalised away: query 1 of image 1 scores low.
    assert first["scores"][1] < 0.05
    expected_first = torch.tensor([[0.0, 0.0, 200.0, 100.0], [0.0, 40.0, 100.0, 60.0]])  # in 200 x 100 pixels
    expected_second = torch.tensor([[16.0, 0.0, 24.0, 25.0], [0.0, 0.0, 8.0, 10.0]])  # in 40 x 50 pixels
    torch.testing.assert_close(first["boxes"], expected_first)
    torch.testing.assert_close(second["boxes"], expected_second)


def test_postprocess_accepts_a_sizes_tensor():
    outputs = {"pred_logits": torch.zeros(2, 3, 4), "pred_boxes": torch.full((2, 3, 4), 0.5)}
    predictions = postprocess(outputs, torch.tensor([[10, 20], [30, 40]]))
    assert [p["boxes"].shape for p in predictions] == [(3, 4), (3, 4)]
    torch.testing.assert_close(predictions[1]["boxes"][0], torch.tensor([10.0, 7.5, 30.0, 22.5]))


def _map(ids, label_mode="contiguous"):
    return CategoryMap.from_coco_categories([{"id": i, "name": f"c{i}"} for i in ids], label_mode)


def test_coco_results_use_the_files_category_ids_and_xywh_boxes():
    prediction = {
        "scores": torch.tensor([0.9, 0.25]),
        "labels": torch.tensor([2, 0]),
        "boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 5.5, 3.25]]),
    }
    results = to_coco_results([prediction], [17], _map([40, 5, 12]))  # sorted ids: label 0 -> 5, 2 -> 40
    assert [r["category_id"] for r in results] == [40, 5]
    assert results[0] == {"image_id": 17, "category_id": 40, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.9}
    assert results[1]["bbox"] == [0.0, 0.0, 5.5, 3.25]
    assert all(isinstance(r["image_id"], int) and isinstance(r["category_id"], int) for r in results)


def test_coco_results_in_category_id_label_mode_keep_the_label_as_id():
    prediction = {"scores": torch.tensor([0.5]), "labels": torch.tensor([12]), "boxes": torch.ones(1, 4)}
    assert to_coco_results([prediction], [1], _map([5, 12], "category_id"))[0]["category_id"] == 12


def test_coco_results_for_several_images_and_none():
    empty = {"scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    one = {"scores": torch.tensor([0.7]), "labels": torch.tensor([1]), "boxes": torch.tensor([[1.0, 2.0, 3.0, 5.0]])}
    results = to_coco_results([empty, one], [3, 4], _map([1, 2]))
    assert len(results) == 1 and results[0]["image_id"] == 4 and results[0]["category_id"] == 2
    assert math.isclose(results[0]["score"], 0.7)
    with pytest.raises(ValueError):
        to_coco_results([one], [1, 2], _map([1, 2]))  # one prediction per image id
