"""`python -m detr_ft.check` on each format a user brings (tests/data/formats/tiny_formats.py writes them): the
faults planted in each are named with the file and the line or element, with exit status 1 and no traceback;
clean data passes and exports to COCO that data=coco reads back the same."""

import json
import subprocess
import sys

import pytest

from tests.data.formats.tiny_formats import BOXES, FORMATS, WRITERS, data_keys, voc_xml, write_hf, write_voc, write_yolo


def _check(*keys: str, cwd, overview: str = "null") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "detr_ft.check", *keys, f"data.cache_dir={cwd / 'cache'}", f"overview={overview}"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _named(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    for text in expected:
        assert text in result.stdout, (text, result.stdout)


def test_yolo_faults_are_named_by_label_file_and_line(tmp_path):
    root = write_yolo(tmp_path / "yolo")
    labels = root / "labels" / "train"
    (labels / "a.txt").write_text("0 0.5 0.5 1.4 0.2\n1 0.5 0.5 0.2 0.2\n")
    (labels / "b.txt").write_text("1 0.5 0.5 0.2 0.2\n\n2 0.5 0.5 0.2 0.2\n")
    (labels / "d.txt").write_text("0 0.5 0.5 0.2\n")
    (labels / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    _named(
        _check(*data_keys("yolo", root), cwd=tmp_path),
        f"{labels / 'a.txt'} line 1: box 0.5 0.5 1.4 0.2 is not normalised to 0-1",
        f"{labels / 'b.txt'} line 3: class id 2 names no class of data.yaml (want 0 to 1)",
        f"{labels / 'd.txt'} line 1: '0 0.5 0.5 0.2' (want 5 numbers: class x_center y_center width height",
        f"label file {labels / 'ghost.txt'} has no image (want an image of the same name in {root / 'images/train'})",
    )


def test_voc_faults_are_named_by_xml_file_and_element(tmp_path):
    root = write_voc(tmp_path / "voc")
    annotations = root / "Annotations"
    (annotations / "a.xml").write_text(
        voc_xml("a.png", BOXES["train"]["a.png"]).replace("<xmax>24</xmax>", "<xmax>2</xmax>")
    )
    (annotations / "b.xml").write_text(voc_xml("b.jpg", BOXES["train"]["b.jpg"], size=False))
    (annotations / "d.xml").write_text(voc_xml("d.png", BOXES["train"]["d.png"]).replace("cat", "bird"))
    (annotations / "f.xml").write_text(voc_xml("f.png", BOXES["val"]["f.png"])[:-5])
    _named(
        _check(*data_keys("voc", root), "data.classes=[cat,dog]", cwd=tmp_path),
        f"{annotations / 'a.xml'} <object> 1 ('cat'): <bndbox> xmin 5, ymin 7, xmax 2, ymax 22: want xmin <= xmax",
        f"{annotations / 'b.xml'}: no <size> element (want <size><width>W</width><height>H</height></size>",
        f"{annotations / 'd.xml'} <object> 1 ('bird'): unknown class <name> 'bird' (want one of ['cat', 'dog'])",
        f"{annotations / 'f.xml'}: malformed XML (unclosed token: line 1, column",
    )


def test_hf_faults_are_named_by_split_row_and_column(tmp_path):
    def edit(rows):
        rows["train"]["objects"][1]["bbox"][0] = [2.0, 2.0, 10.0]
        del rows["validation"]["objects"]

    root = write_hf(tmp_path / "hf", edit)
    _named(
        _check(*data_keys("hf", root), cwd=tmp_path),
        "row 1 objects.bbox[0]: [2.0, 2.0, 10.0] is not [x, y, width, height] (4 numbers, in pixels)",
        f"== val: {root / 'validation'}",
        "no objects column (it has ['image_id', 'image']; want 'image' and 'objects' = {'bbox'",
    )


def test_clean_yolo_passes_and_exports_to_coco_that_reads_back_the_same(tmp_path):
    root = write_yolo(tmp_path / "yolo")
    exported = _check(*data_keys("yolo", root), "export=coco", f"out={tmp_path / 'as_coco'}", cwd=tmp_path)
    assert exported.returncode == 0 and f"exported in COCO form: {tmp_path / 'as_coco'}" in exported.stdout
    train = json.loads((tmp_path / "as_coco" / "train" / "_annotations.coco.json").read_text())
    assert len(train["images"]) == 4 and len(train["annotations"]) == 4 and "source" not in train["annotations"][0]
    again = _check("data=coco", f"data.root={tmp_path / 'as_coco'}", cwd=tmp_path)
    assert again.returncode == 0 and "4 images, 4 annotations, 2 categories" in again.stdout, again.stdout
    refused = _check(*data_keys("yolo", root), "export=coco", f"out={tmp_path / 'as_coco'}", cwd=tmp_path)
    assert refused.returncode == 1 and "exists and is not an empty folder" in refused.stderr


@pytest.mark.parametrize("kind", FORMATS)
def test_each_clean_format_passes_with_its_picture(tmp_path, kind):
    root = WRITERS[kind](tmp_path / kind)
    result = _check(*data_keys(kind, root), cwd=tmp_path, overview=str(tmp_path / "overview.png"))
    assert result.returncode == 0 and result.stdout.strip().endswith("dataset OK"), result.stdout + result.stderr
    assert "4 images, 4 annotations, 2 categories" in result.stdout and "cat=2, dog=2" in result.stdout
    assert (tmp_path / "overview.png").stat().st_size > 0
