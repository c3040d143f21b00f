"""`python -m detr_ft.check`, run as users run it: a clean report on the built-in data, and every
problem of a deliberately broken dataset named with exit status 1. Runs in a folder of its own, which the
check must leave empty."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from detr_ft.data.checks.split import validate_split
from tests.data.tiny_coco import write_damaged_png, write_tiny_coco


def _check(*overrides: str, cwd) -> subprocess.CompletedProcess:
    before = sorted(cwd.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "detr_ft.check", *overrides], cwd=cwd, capture_output=True, text=True, timeout=180
    )
    written = sorted(set(cwd.iterdir()) - {cwd / "dataset_overview.png"})
    assert written == before, "the check writes nothing where it is run but the dataset's picture"
    return result


def test_the_built_in_data_gets_a_clean_report(tmp_path):
    sizes = ["data.train_size=12", "data.val_size=4", "data.image_size=64", f"data.cache_dir={tmp_path}"]
    (tmp_path / "here").mkdir()
    result = _check("data=synthetic_v2", *sizes, cwd=tmp_path / "here")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout and result.stdout.strip().endswith("dataset OK")
    assert "== train:" in result.stdout and "== val:" in result.stdout and "star=" in result.stdout
    assert "(model.num_queries=20)" in result.stdout  # detr_small's, the default model


def _broken_dataset(folder):
    """Train: a photo whose EXIF rotation contradicts the file's size, a truncated JPEG, a box without
    numbers. Val: a category list that differs from train's."""
    (folder / "images").mkdir()
    rotated = Image.fromarray(np.full((20, 40, 3), 90, dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "images" / "rotated.jpg", exif=exif)  # stored 40x20, displayed 20x40
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "full.jpg")
    data = (folder / "full.jpg").read_bytes()
    (folder / "images" / "cut.jpg").write_bytes(data[: len(data) // 3])
    categories = [{"id": 1, "name": "box"}, {"id": 2, "name": "unused"}]
    train = {
        "images": [
            {"id": 1, "file_name": "rotated.jpg", "width": 40, "height": 20},
            {"id": 2, "file_name": "cut.jpg", "width": 64, "height": 64},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": ["1", 2, 3, 4], "area": 12, "iscrowd": 0},
        ],
        "categories": categories,
    }
    (folder / "train.json").write_text(json.dumps(train))
    val = {**train, "categories": categories[:1], "annotations": train["annotations"][:1]}
    (folder / "val.json").write_text(json.dumps(val))


def _check_coco(images, train_annotations, val_annotations, *more: str) -> subprocess.CompletedProcess:
    return _check(
        *more,
        "data=coco",
        f"data.train_images={images}",
        f"data.train_annotations={train_annotations}",
        f"data.val_images={images}",
        f"data.val_annotations={val_annotations}",
        cwd=images.parent,
    )


def test_box_category_id_and_file_problems_are_reported(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30), 128).save(tmp_path / "images" / "a.png")
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "missing.png", "width": 10, "height": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [30, 20, 30, 30], "area": 900, "iscrowd": 0},
            {"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 0, 5], "area": 0, "iscrowd": 0},
        ],
        "categories": [{"id": 5, "name": "thing"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(data))
    result = _check_coco(tmp_path / "images", tmp_path / "instances.json", tmp_path / "instances.json")
    assert result.returncode == 1, result.stdout + result.stderr
    for expected in (
        "WARNING: clipped 1 box(es) that reach past their image's edge",
        "unknown category_id 99",
        "zero-area 'bbox' [1, 1, 0, 5]",
        "'id' 1 must be an integer unique among 'annotations'",
        "missing.png is missing",
        "1 of 2 images have no annotations",
        "training stops on unreadable image files unless data.skip_bad_images=true",
    ):
        assert expected in result.stdout, expected


def test_a_broken_dataset_is_reported_problem_by_problem(tmp_path):
    _broken_dataset(tmp_path)
    result = _check_coco(tmp_path / "images", tmp_path / "train.json", tmp_path / "val.json")
    assert result.returncode == 1, result.stdout + result.stderr
    for expected in (
        "rotated.jpg is 20x40 as displayed but the annotation file says 'width' 40, 'height' 20 (EXIF-rotated",
        "cut.jpg is truncated (its JPEG end marker is missing)",
        "malformed 'bbox' ['1', 2, 3, 4]",
        "category 'unused' has no annotations in this split",
        "the val split's categories {1: 'box'} differ from the train split's {1: 'box', 2: 'unused'}",
        "2 images, 2 annotations, 2 categories",
    ):
        assert expected in result.stdout, (expected, result.stdout)
    assert result.stdout.strip().endswith("error(s)")


def test_the_coco_layout_under_data_root_the_four_paths_alone_and_neither(tmp_path):
    composed = _check("data=coco", "data.root=/data/mycoco", "--cfg", "job", cwd=tmp_path)
    assert composed.returncode == 0, composed.stderr
    assert "train_images: null" in composed.stdout and "root: /data/mycoco" in composed.stdout
    missing = _check("data=coco", cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.strip().startswith("error: no dataset location: set data.root"), missing.stderr
    assert "data.train_images, data.train_annotations, data.val_images and data.val_annotations" in missing.stderr
    (tmp_path / "mine").mkdir()
    images, annotations = write_tiny_coco(tmp_path / "mine")
    paths = _check_coco(images, annotations, annotations)  # no data.root: the README's "other layouts"
    assert paths.returncode == 0, paths.stdout + paths.stderr
    assert paths.stdout.strip().endswith("dataset OK")


def test_structural_problems_are_errors_not_crashes(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "partial.json").write_text(json.dumps({"images": [], "categories": []}))
    assert (
        "no ['images', 'annotations', 'categories'] list(s)"
        in validate_split(tmp_path, tmp_path / "list.json").errors[0]
    )
    assert "no ['annotations'] list(s)" in validate_split(tmp_path, tmp_path / "partial.json").errors[0]
    assert "does not exist" in validate_split(tmp_path / "nowhere", tmp_path / "list.json").errors[0]
    assert "annotation file" in validate_split(tmp_path, tmp_path / "absent.json").errors[0]


def test_the_check_decodes_every_image_with_a_progress_bar_and_names_damaged_pixels(tmp_path):
    """A header read (all that training does at its start) finds nothing wrong with this PNG."""
    (tmp_path / "mine").mkdir()
    images, annotations = write_tiny_coco(tmp_path / "mine")
    write_damaged_png(images / "3.png")
    assert validate_split(images, annotations).all_errors == []
    result = _check_coco(images, annotations, annotations)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"ERROR: image id 3: cannot decode image {images / '3.png'}" in result.stdout
    assert "decoding the train images:" in result.stderr and "/6 [" in result.stderr  # tqdm's bar, 6 images
    assert _check_coco(images, annotations, annotations, "decode=false").returncode == 0
