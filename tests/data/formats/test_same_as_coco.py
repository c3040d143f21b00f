"""Each format a user brings reads to what its COCO equivalent reads to: for the same boxes, the same image
count, box count, boxes (in pixels) and class map; and what training reads (the datamodule's `paths`) is a
plain COCO file holding it."""

import json

import pytest

from detr_ft.data import DetectionDataModule
from tests.data.formats.tiny_formats import FORMATS, WRITERS, write_coco

SIZES = {"train_scales": [32], "max_size": 64, "eval_scale": 32, "crop": False}


def _boxes_by_image(data: dict) -> list[list]:
    """[(category id, bbox rounded)] of each image, images in id order."""
    images = sorted(image["id"] for image in data["images"])
    return [
        sorted((a["category_id"], [round(v, 3) for v in a["bbox"]]) for a in data["annotations"] if a["image_id"] == i)
        for i in images
    ]


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_reads_to_what_its_coco_equivalent_reads_to(tmp_path, kind):
    root = WRITERS[kind](tmp_path / kind)
    fmt = "coco" if kind == "roboflow" else kind
    module = DetectionDataModule(format=fmt, root=str(root), cache_dir=str(tmp_path / "cache"), **SIZES)
    # Roboflow's category ids count from 1 (its category 0 names the dataset and is left out); the others' from 0.
    coco = DetectionDataModule(**write_coco(tmp_path / "coco", first_id=int(kind == "roboflow")), **SIZES)
    assert module.category_map == coco.category_map and module.class_names == ["cat", "dog"]
    for split in ("train", "val"):
        ours, theirs = module.dataset(split).coco.dataset, coco.dataset(split).coco.dataset
        assert len(ours["images"]) == len(theirs["images"]) and len(ours["annotations"]) == len(theirs["annotations"])
        assert _boxes_by_image(ours) == _boxes_by_image(theirs)
        kept = json.loads(module.paths[split][1].read_text())
        names = {category["id"]: category["name"] for category in kept["categories"]}
        assert _boxes_by_image(kept) == _boxes_by_image(theirs) and names == coco.category_map.id_names
        assert module.paths[split][1].is_relative_to(tmp_path / "cache")  # the user's folder gets nothing
    images, target = module.dataset("train")[0]
    assert images.shape[0] == 3 and target["labels"].tolist() == [0, 1]
