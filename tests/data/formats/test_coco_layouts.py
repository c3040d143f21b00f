"""data=coco finds its splits from data.root alone: Roboflow's export (train/, valid/, test/, each with its images
and _annotations.coco.json) or COCO 2017's layout; explicit paths win; no location at all names the keys."""

import json

import pytest

from detr_ft.data.checks.split import validate_split
from detr_ft.data.formats import DatasetError, find_splits
from detr_ft.data.formats.coco import ROBOFLOW_FILE
from tests.data.formats.tiny_formats import write_roboflow


def test_roboflow_export_is_found_from_its_root_with_valid_as_val_and_test_when_present(tmp_path):
    root = write_roboflow(tmp_path / "rf")
    splits = find_splits("coco", str(root))
    assert sorted(splits) == ["train", "val"] and splits["val"].source == root / "valid" / ROBOFLOW_FILE
    (root / "test").mkdir()
    (root / "test" / ROBOFLOW_FILE).write_text((root / "valid" / ROBOFLOW_FILE).read_text())
    assert find_splits("coco", str(root))["test"].images == root / "test"
    mine = find_splits("coco", str(root), val_annotations=str(tmp_path / "mine.json"))
    assert mine["val"].source == tmp_path / "mine.json" and mine["val"].images == root / "valid"


def test_roboflows_dataset_category_is_left_out_with_a_note(tmp_path):
    root = write_roboflow(tmp_path / "rf")
    split = find_splits("coco", str(root))["train"]
    report = validate_split(split.images, split.source, "train", split.read)
    assert report.all_errors == [] and report.categories == {1: "cat", 2: "dog"}
    assert "left out category 0 'pets': the supercategory of the others, with no boxes" in report.notes
    data = json.loads((root / "train" / ROBOFLOW_FILE).read_text())
    assert len(data["categories"]) == 3  # the user's file is left as it is


def test_the_coco_2017_layout_and_no_location(tmp_path):
    splits = find_splits("coco", str(tmp_path))
    assert splits["train"].source == tmp_path / "annotations" / "instances_train2017.json" and "test" not in splits
    with pytest.raises(DatasetError, match="no dataset location: set data.root"):
        find_splits("coco", None, train_images="None/train2017", train_annotations="None/annotations/x.json")
