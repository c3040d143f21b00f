"""data=voc: the devkit layout and one folder per split, VOC's 1-based inclusive corners, the class list from
data.classes (in its order) or every name found (sorted), and `<filename>` falling back to the image beside."""

import pytest

from detr_ft.data.checks.split import validate_split
from detr_ft.data.formats import DatasetError, find_splits
from tests.data.formats.tiny_formats import BOXES, _image, voc_xml, write_voc


def _report(root, classes=None, split="train"):
    source = find_splits("voc", str(root), classes)[split]
    return validate_split(source.images, source.source, split, source.read)


def test_one_folder_per_split_and_a_filename_naming_no_file(tmp_path):
    for split, folder in (("train", "train"), ("val", "valid")):
        for index, (name, boxes) in enumerate(BOXES[split].items()):
            _image(tmp_path / folder / name, index)
            (tmp_path / folder / f"{name[:1]}.xml").write_text(voc_xml("renamed.png" if index else name, boxes))
    report = _report(tmp_path)
    assert report.all_errors == [] and [image["file_name"] for image in report.data["images"]][:2] == ["a.png", "b.jpg"]
    assert report.data["annotations"][0]["bbox"] == [4.0, 6.0, 20.0, 16.0]  # <xmin>5</xmin> is pixel 4, 0-based


def test_data_classes_sets_the_order_and_every_name_found_is_the_default(tmp_path):
    root = write_voc(tmp_path / "voc")
    assert _report(root).categories == {0: "cat", 1: "dog"}
    assert _report(root, ["dog", "cat"]).categories == {0: "dog", 1: "cat"}
    (root / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(DatasetError, match="has no VOC val split: want ImageSets/Main/val.txt"):
        find_splits("voc", str(root))


def test_a_listed_xml_that_is_missing_is_named(tmp_path):
    root = write_voc(tmp_path / "voc")
    (root / "Annotations" / "c.xml").unlink()
    (error,) = _report(root).all_errors
    assert error.startswith(f"{root / 'Annotations' / 'c.xml'}: cannot be read (No such file or directory)")
