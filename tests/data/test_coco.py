"""A COCO-format folder into a dataset: the category map both ways, and every bad-input case failing with
the file (or image) named."""

import json

import pytest
from PIL import Image

from detr_ft.data import CategoryMap, DetectionDataModule, coco
from detr_ft.data.checks.split import DatasetError
from detr_ft.data.images import BadImageError


def test_category_map_both_ways_and_both_modes():
    categories = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 12, "name": "eel"}]
    contiguous = CategoryMap.from_coco_categories(categories)
    assert contiguous.num_classes == 3 and contiguous.names == ["dog", "cat", "eel"]
    assert [contiguous.label_of(i) for i in (3, 7, 12)] == [0, 1, 2]
    assert [contiguous.category_id_of(label) for label in range(3)] == [3, 7, 12]
    by_id = CategoryMap.from_coco_categories(categories, "category_id")
    assert by_id.num_classes == 13 and by_id.label_of(12) == 12 and by_id.category_id_of(7) == 7
    assert by_id.names[3] == "dog" and by_id.names[0].startswith("unused")
    assert CategoryMap.from_dict(contiguous.to_dict()) == contiguous
    with pytest.raises(KeyError, match="category id 5"):
        contiguous.label_of(5)


def _write_coco(folder, annotations=None, categories=None, image_mode="RGB"):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.new(image_mode, (40, 30), 128).save(folder / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": annotations
        if annotations is not None
        else [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [2, 3, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": categories or [{"id": 5, "name": "thing"}],
    }
    (folder / "instances.json").write_text(json.dumps(data))
    return folder / "images", folder / "instances.json"


def _module(images, annotations, **kw):
    return DetectionDataModule(
        str(images),
        str(annotations),
        str(images),
        str(annotations),
        train_scales=[32],
        max_size=64,
        eval_scale=32,
        crop=False,
        **kw,
    )


def test_missing_annotation_file_and_image_folder_are_named(tmp_path):
    images, annotations = _write_coco(tmp_path)
    with pytest.raises(DatasetError, match="annotation file .*nope.json does not exist"):
        _module(images, tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="image folder .*no_images does not exist"):
        _module(tmp_path / "no_images", annotations)


def test_invalid_json_and_missing_bbox_are_named(tmp_path):
    images, annotations = _write_coco(tmp_path)
    annotations.write_text("{not json")
    with pytest.raises(ValueError, match="instances.json is not valid JSON"):
        _module(images, annotations)
    _write_coco(tmp_path, annotations=[{"id": 9, "image_id": 1, "category_id": 5}])
    with pytest.raises(DatasetError, match="annotation id 9 .*malformed 'bbox' None"):
        _module(images, annotations)


def test_num_classes_disagreeing_with_the_file_names_both_numbers(tmp_path):
    images, annotations = _write_coco(tmp_path)
    with pytest.raises(ValueError, match="num_classes=3 disagrees .* defines 1 classes"):
        _module(images, annotations, num_classes=3)


def test_an_image_that_fails_to_decode_after_the_up_front_check_stops_with_its_path_unless_skipped(
    tmp_path, monkeypatch
):
    """A file whose header is whole but whose pixels do not decode (the header check cannot see it: the
    decoder is made to fail here) stops at loading with its path, or is skipped with data.skip_bad_images=true
    (tests/data/test_validation.py covers what the header check stops)."""
    images, annotations = _write_coco(tmp_path)
    data = json.loads(annotations.read_text())
    data["images"].append({"id": 2, "file_name": "broken.png", "width": 40, "height": 30})
    annotations.write_text(json.dumps(data))
    Image.new("RGB", (40, 30), 128).save(images / "broken.png")
    load_rgb = coco.load_rgb

    def failing_on_broken(path):
        if path.name == "broken.png":
            raise BadImageError(f"cannot decode image {path}: broken data stream")
        return load_rgb(path)

    monkeypatch.setattr(coco, "load_rgb", failing_on_broken)
    strict = _module(images, annotations)
    strict.setup("fit")
    with pytest.raises(BadImageError, match="broken.png.*data.skip_bad_images=true"):
        strict.datasets["train"][1]
    lenient = _module(images, annotations, skip_bad_images=True)
    lenient.setup("fit")
    image, target = lenient.datasets["train"][1]
    assert int(target["image_id"]) == 1 and lenient.datasets["train"].skipped == 1
