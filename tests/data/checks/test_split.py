"""The one validator of a COCO split (detr_ft/data/validation.py), case family by case family, through the data
API (validate_split lists, read_split raises) and the datamodule training builds: every error names the
annotation file, the image or annotation id, the JSON key and what is valid; boxes that only poke out of their
image are clipped with a warning that counts them."""

import json
import logging
import math

import pytest
from PIL import Image

from detr_ft.data import DetectionDataModule
from detr_ft.data.checks.split import DatasetError, read_split, validate_split
from tests.data.tiny_coco import tiny_coco_dict, write_damaged_png, write_tiny_coco


def _errors(tmp_path, edit) -> list[str]:
    return validate_split(*write_tiny_coco(tmp_path, edit)).all_errors


def _module(images, annotations, **kw) -> DetectionDataModule:
    sizes = {"train_scales": [32], "max_size": 64, "eval_scale": 32, "crop": False}
    return DetectionDataModule(str(images), str(annotations), str(images), str(annotations), **sizes, **kw)


def test_the_tiny_folder_is_valid_and_reads_unchanged(tmp_path):
    images, annotations = write_tiny_coco(tmp_path)
    report = validate_split(images, annotations)
    assert report.all_errors == [] and report.warnings == []
    assert read_split(images, annotations) == tiny_coco_dict()


@pytest.mark.parametrize(
    "bbox, message",
    [
        ([8, 8, -4, 10], "annotation id 11 (image 1): 'bbox' [8, 8, -4, 10] has a negative width or height"),
        ([8, 8, 0, 10], "annotation id 11 (image 1): zero-area 'bbox' [8, 8, 0, 10]"),
        ([8, math.nan, 4, 10], "annotation id 11 (image 1): 'bbox' [8, nan, 4, 10] holds a NaN or infinite value"),
        ([8, 8, math.inf, 10], "'bbox' [8, 8, inf, 10] holds a NaN or infinite value"),
        ([8, 8, 4], "annotation id 11 (image 1): malformed 'bbox' [8, 8, 4]"),
        (["1", 2, 3, 4], "malformed 'bbox' ['1', 2, 3, 4]"),
        ([70, 8, 5, 5], "'bbox' [70, 8, 5, 5] lies entirely outside the 64x64 image"),
        ([-20, 8, 20, 5], "'bbox' [-20, 8, 20, 5] lies entirely outside the 64x64 image"),
    ],
)
def test_bad_boxes_are_errors_naming_the_annotation_the_key_and_what_is_valid(tmp_path, bbox, message):
    def edit(data):
        data["annotations"][0]["bbox"] = bbox

    errors = _errors(tmp_path, edit)
    assert len(errors) == 1 and message in errors[0], errors
    images, annotations = write_tiny_coco(tmp_path, edit)
    with pytest.raises(DatasetError, match=r"instances\.json \(train split\) has 1 problem") as raised:
        _module(images, annotations)
    assert "'bbox'" in str(raised.value) and "python -m detr_ft.check" in str(raised.value)


def test_boxes_poking_out_of_their_image_are_clipped_and_counted_in_a_warning(tmp_path, caplog):
    def edit(data):
        data["annotations"][0]["bbox"] = [-4, 50, 20, 30]  # 4 px left of the image, 16 px below it
        data["annotations"][1]["bbox"] = [60, 0, 10, 10]

    images, annotations = write_tiny_coco(tmp_path, edit)
    with caplog.at_level(logging.WARNING, logger="detr_ft.data.checks.split"):
        data = read_split(images, annotations)
    assert data["annotations"][0]["bbox"] == [0, 50, 16, 14] and data["annotations"][1]["bbox"] == [60, 0, 4, 10]
    assert data["annotations"][2]["bbox"] == [8, 8, 24, 20]
    # COCO evaluation's small/medium/large split reads `area`: it follows the clipped box
    assert [a["area"] for a in data["annotations"][:3]] == [16 * 14, 4 * 10, 480]
    assert "clipped 2 box(es) that reach past their image's edge" in caplog.text
    assert "instances.json (train split)" in caplog.text


def test_bad_references_and_ids_are_errors(tmp_path):
    def edit(data):
        data["annotations"][0]["image_id"] = 99
        data["annotations"][1]["id"] = data["annotations"][2]["id"]
        data["annotations"][3]["category_id"] = 7
        data["images"].append({**data["images"][4], "file_name": "5.png"})

    errors = "\n".join(_errors(tmp_path, edit))
    assert "annotation id 11 (image 99): 'image_id' 99 names no entry of 'images'" in errors
    assert "annotation id 13 (image 3): 'id' 13 must be an integer unique among 'annotations'" in errors
    assert "annotation id 14 (image 4): unknown category_id 7 (want one of the 'categories' ids: [1, 2])" in errors
    assert "image id 5 ('5.png'): duplicate image id ('id' must be a unique integer among 'images')" in errors


def _flip_a_pixel_byte(path):
    """A bit flip in the compressed pixels (torchvision's decoder would crash the process on it)."""
    whole = bytearray(path.read_bytes())
    whole[whole.index(b"IDAT") + 7] ^= 0xFF
    path.write_bytes(bytes(whole))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.unlink(), "is missing"),
        (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
        (lambda path: path.write_text("name,score\na,1\n"), "is not an image file"),
        (lambda path: path.write_bytes(path.read_bytes()[:-30]), "is truncated (its PNG end marker is missing)"),
        (_flip_a_pixel_byte, "is damaged or has an unreadable header (broken PNG file"),
        (lambda path: path.unlink() or path.mkdir(), "is not a file"),
        (lambda path: path.unlink() or path.symlink_to(path), "is a broken symbolic link"),
    ],
    ids=["missing", "empty", "not-an-image", "truncated", "damaged", "folder", "symlink-loop"],
)
def test_bad_files_stop_at_construction_unless_skipped_then_they_are_counted(tmp_path, caplog, damage, message):
    images, annotations = write_tiny_coco(tmp_path)
    damage(images / "2.png")
    (bad,) = validate_split(images, annotations).bad_files.items()
    assert bad[0] == 2 and bad[1].startswith(f"image id 2: file {images / '2.png'} {message}"), bad
    with pytest.raises(DatasetError, match="Set data.skip_bad_images=true to skip such files") as raised:
        _module(images, annotations)
    assert f"{images / '2.png'} {message}" in str(raised.value)
    with caplog.at_level(logging.WARNING, logger="detr_ft.data.checks.split"):
        module = _module(images, annotations, skip_bad_images=True)
    assert "skipped 1 of 6 images whose file is missing or unreadable, with their 1 annotation(s)" in caplog.text
    module.setup("fit")
    assert len(module.datasets["train"]) == 5 and 2 not in module.datasets["train"].image_ids
    module.datasets["train"][1]  # the images left load


def test_a_jpeg_cut_short_is_truncated_and_a_whole_one_is_not(tmp_path):
    images, annotations = write_tiny_coco(tmp_path)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(images / "1.jpg")
    data = json.loads(annotations.read_text())
    data["images"][0]["file_name"] = "1.jpg"
    annotations.write_text(json.dumps(data))
    assert validate_split(images, annotations).all_errors == []
    (images / "1.jpg").write_bytes((images / "1.jpg").read_bytes()[:-2])
    assert "is truncated (its JPEG end marker is missing)" in validate_split(images, annotations).bad_files[1]


@pytest.mark.parametrize("file_name", ["../outside.png", "sub/../../outside.png", "/tmp/outside.png"])
def test_a_file_name_leaving_the_image_folder_is_an_error(tmp_path, file_name):
    def edit(data):
        data["images"][0]["file_name"] = file_name

    Image.new("RGB", (64, 64)).save(tmp_path / "outside.png")
    errors = _errors(tmp_path, edit)
    assert len(errors) == 1 and f"image id 1 ({file_name!r}): 'file_name' leaves the image folder" in errors[0]
    assert "without '..' or a leading '/'" in errors[0]


def test_a_split_without_annotations_is_an_error_for_train_and_val(tmp_path):
    images, annotations = write_tiny_coco(tmp_path, lambda data: data["annotations"].clear())
    for split in ("train", "val"):
        (error,) = validate_split(images, annotations, split).all_errors
        assert f"the {split} split has no annotations: a split needs at least one box" in error
    with pytest.raises(DatasetError, match="the train split has no annotations"):
        _module(images, annotations)


def test_a_size_in_the_file_that_disagrees_with_the_pixels_is_an_error(tmp_path):
    def edit(data):
        data["images"][2]["width"] = 80
        data["images"][3]["height"] = 0

    errors = _errors(tmp_path, edit)
    assert len(errors) == 2, errors
    assert (
        "image id 3: " in errors[0]
        and "3.png is 64x64 as displayed but the annotation file says 'width' 80, " in (errors[0])
    )
    assert "image id 4 ('4.png'): 'width' 64 and 'height' 0 must be pixel counts > 0" in errors[1]


def test_coco_without_root_or_paths_names_the_keys(tmp_path):
    with pytest.raises(DatasetError, match="set data.root .* or all four of data.train_images, data.train_annotations"):
        DetectionDataModule("None/train2017", "None/annotations/x.json", "None/val2017", "None/annotations/y.json")


def test_image_files_are_checked_from_their_headers_without_decoding_a_pixel(tmp_path, monkeypatch):
    images, annotations = write_tiny_coco(tmp_path)
    Image.new("RGB", (64, 64)).save(images / "1.jpg")
    data = json.loads(annotations.read_text())
    data["images"][0]["file_name"] = "1.jpg"
    annotations.write_text(json.dumps(data))

    def decode(self):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", decode)
    assert validate_split(images, annotations).all_errors == []


def test_area_is_filled_when_absent_and_crowd_regions_are_said_to_be_left_out_of_training(tmp_path, caplog):
    def edit(data):
        del data["annotations"][0]["area"]
        data["annotations"][1]["iscrowd"] = 1

    images, annotations = write_tiny_coco(tmp_path, edit)
    report = validate_split(images, annotations)
    assert report.all_errors == [] and report.data["annotations"][0]["area"] == 24 * 20
    assert "1 annotation(s) without 'area' get their box's (COCO evaluation reads it)" in report.notes
    assert sum(report.counts.values()) == 5  # the crowd region is no object to train on
    with caplog.at_level(logging.WARNING, logger="detr_ft.data.checks.split"):
        read_split(images, annotations)
    assert "1 crowd annotation(s) (iscrowd=1): left out of training targets" in caplog.text
    assert "COCO evaluation ignores detections on them" in caplog.text


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["images"].append(7), "images[6] is 7, not an object with id, file_name, width, height"),
        (lambda d: d["images"][0].update(id="one"), "'id' 'one' is not an integer"),
        (lambda d: d["images"][0].update(id=[1]), "'id' [1] is not an integer"),
        (lambda d: d["annotations"].append("box"), "annotations[6] is 'box', not an object"),
        (lambda d: d["annotations"][0].update(image_id=[1]), "'image_id' [1] names no entry of 'images'"),
        (lambda d: d["annotations"][0].update(category_id={"a": 1}), "unknown category_id {'a': 1}"),
        (lambda d: d["annotations"][0].update(area="big"), "'area' 'big' must be a number >= 0"),
        (lambda d: d["annotations"][0].update(iscrowd="no"), "'iscrowd' 'no' must be 0 or 1"),
        (lambda d: d["categories"].append([3]), "categories[2]: 'id' None must be an integer unique among them"),
        (lambda d: d["categories"][1].update(name=None), "category id 2: 'name' None must be a non-empty text"),
        (
            lambda d: d["categories"].append({"id": 3, "name": "disc"}),
            "category ids 2 and 3 share the name 'disc' (names must be unique: merge the two, or rename one)",
        ),
    ],
)
def test_entries_of_the_wrong_type_are_errors_naming_them_not_crashes(tmp_path, edit, message):
    errors = _errors(tmp_path, edit)
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"[" * 100_000, "nests lists deeper than a JSON reader allows"),
        (b"", "is not valid JSON"),
    ],
)
def test_unreadable_annotation_files_are_errors_naming_them(tmp_path, content, message):
    (tmp_path / "instances.json").write_bytes(content)
    (error,) = validate_split(tmp_path, tmp_path / "instances.json").errors
    assert error.startswith(f"annotation file {tmp_path / 'instances.json'} ") and message in error


def test_a_byte_order_mark_is_read_past(tmp_path):
    images, annotations = write_tiny_coco(tmp_path)
    annotations.write_bytes(b"\xef\xbb\xbf" + annotations.read_bytes())
    assert validate_split(images, annotations).all_errors == []


def test_splits_whose_ids_carry_other_names_stop_training_naming_both(tmp_path):
    images, train = write_tiny_coco(tmp_path)
    _, val = write_tiny_coco(
        tmp_path,
        lambda d: d["categories"].reverse() or d["categories"][0].update(id=1) or d["categories"][1].update(id=2),
        "val.json",
    )
    with pytest.raises(DatasetError, match=r"val.json: the val split's categories \{1: 'disc', 2: 'square'\} differ"):
        DetectionDataModule(
            str(images), str(train), str(images), str(val), train_scales=[32], max_size=64, eval_scale=32
        )


def test_decoding_finds_damaged_pixels_that_the_header_read_cannot(tmp_path):
    images, annotations = write_tiny_coco(tmp_path)
    write_damaged_png(images / "4.png")
    assert validate_split(images, annotations).all_errors == []  # what training checks at its start
    (error,) = validate_split(images, annotations, decode=True).all_errors
    assert error.startswith(f"image id 4: cannot decode image {images / '4.png'}: ")
