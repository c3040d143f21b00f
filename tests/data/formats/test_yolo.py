"""data=yolo: data.yaml's names (a list or {id: name}) and folders (Roboflow's `../train/images` too), labels in
the labels/ folder matching images/ (or beside the images), and what is wrong with data.yaml named."""

import pytest

from detr_ft.data.checks.split import read_split, validate_split
from detr_ft.data.formats import DatasetError, find_splits
from tests.data.formats.tiny_formats import write_yolo


def _read(root, split="train"):
    source = find_splits("yolo", str(root))[split]
    return validate_split(source.images, source.source, split, source.read)


def test_roboflows_yaml_with_a_names_list_and_parent_relative_folders(tmp_path):
    root = write_yolo(tmp_path / "yolo")
    (root / "images" / "train").rename(root / "train_images")
    (root / "data.yaml").write_text("train: ../train_images\nval: images/val\nnc: 2\nnames: ['cat', 'dog']\n")
    (root / "labels" / "train").rename(root / "train_images_labels")
    for label in (root / "train_images_labels").iterdir():  # no images/ in the path: labels lie beside the images
        label.rename(root / "train_images" / label.name)
    (root / "train_images" / "classes.txt").write_text("cat\ndog\n")  # LabelImg's class list is not a label file
    report = _read(root)
    assert report.all_errors == [] and report.categories == {0: "cat", 1: "dog"}
    assert sum(report.counts.values()) == 4 and "1 of 4 images have no annotations" in " ".join(report.notes)


@pytest.mark.parametrize(
    "yaml, message",
    [
        (None, "holds no data.yaml"),
        ("train: images/train\nval: images/val\n", "'names' must list the class names"),
        ("train: images/train\nval: images/val\nnc: 3\nnames: [a, b]\n", "'nc' 3 disagrees with the 2 'names'"),
        ("train: images/train\nnames: [a, b]\n", "'val' must name the val images' folder"),
        ("train: [images/train\n", "is not readable YAML"),
    ],
)
def test_what_is_wrong_with_data_yaml_is_named(tmp_path, yaml, message):
    root = write_yolo(tmp_path / "yolo")
    if yaml is None:
        (root / "data.yaml").unlink()
    else:
        (root / "data.yaml").write_text(yaml)
    with pytest.raises(DatasetError, match=message):
        find_splits("yolo", str(root))


def test_an_unreadable_image_is_a_bad_file_that_skip_bad_images_leaves_out_with_its_boxes(tmp_path):
    root = write_yolo(tmp_path / "yolo")
    (root / "images" / "train" / "a.png").write_bytes(b"not a png")
    source = find_splits("yolo", str(root))["train"]
    report = validate_split(source.images, source.source, "train", source.read)
    assert report.errors == [] and "a.png is not an image file" in next(iter(report.bad_files.values()))
    data = read_split(source.images, source.source, "train", skip_bad_images=True, read=source.read)
    assert len(data["images"]) == 3 and len(data["annotations"]) == 2
