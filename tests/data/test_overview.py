"""dataset_overview.png's data: class counts per split, objects per image, relative boxes, samples."""

import json

import numpy as np
import pytest

from detr_ft.data.overview import draw_overview, overview_data


def write_split(folder, name, images, annotations):
    categories = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return folder, path


@pytest.fixture
def splits(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 50},
        {"id": 2, "file_name": "b.png", "width": 10, "height": 10},
    ]
    train = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 25]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [50, 25, 10, 5]},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "iscrowd": 1},
    ]
    val = [{"id": 1, "image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5]}]
    return {"train": write_split(tmp_path, "train", images, train), "val": write_split(tmp_path, "val", images, val)}


def test_counts_per_split_in_category_order_without_crowd_regions(splits):
    data = overview_data(splits)
    assert data.class_names == ["cat", "dog"]
    assert data.class_counts == {"train": [0, 2], "val": [1, 0]}  # train's cat is a crowd region: not an object


def test_objects_per_image_and_relative_boxes_of_train(splits):
    data = overview_data(splits)
    assert sorted(data.objects_per_image) == [0, 2]  # the crowd box is left out; image 2 has none in train
    np.testing.assert_allclose(data.boxes, [[0.25, 0.25, 0.5, 0.5], [0.55, 0.55, 0.1, 0.1]])
    assert [(path.name, len(boxes)) for path, boxes in data.samples] == [("a.png", 2), ("b.png", 0)]


def test_the_picture_of_a_real_folder(synthetic_folder, tmp_path):
    splits = {
        split: (synthetic_folder / split, synthetic_folder / "annotations" / f"instances_{split}.json")
        for split in ("train", "val")
    }
    data = overview_data(splits, samples=4)
    assert len(data.samples) == 4 and all(path.exists() for path, _ in data.samples)
    assert sum(data.class_counts["train"]) == len(data.boxes) == sum(data.objects_per_image)
    assert draw_overview(data, tmp_path / "overview.png", num_queries=10).stat().st_size > 0
