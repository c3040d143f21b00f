"""data=hf: a DatasetDict kept with save_to_disk, class names from the ClassLabel feature (ids when there is
none), images written once into the cache, and a missing `datasets` package named with its install command."""

import builtins

import pytest
from PIL import Image

from detr_ft.data.checks.split import validate_split
from detr_ft.data.formats import DatasetError, find_splits
from tests.data.formats.tiny_formats import write_hf


def _report(root, cache, split="train"):
    source = find_splits("hf", str(root), cache_dir=str(cache))[split]
    return validate_split(source.images, source.source, split, source.read)


def test_classlabel_names_and_images_written_once_into_the_cache(tmp_path):
    root = write_hf(tmp_path / "hf")
    report = _report(root, tmp_path / "cache")
    assert report.all_errors == [] and report.categories == {0: "cat", 1: "dog"}
    written = sorted((tmp_path / "cache" / "hf").rglob("*.png"))
    assert len(written) == 4 and all(path.is_relative_to(tmp_path / "cache") for path in written)
    times = [path.stat().st_mtime_ns for path in written]
    _report(root, tmp_path / "cache")
    assert [path.stat().st_mtime_ns for path in sorted((tmp_path / "cache" / "hf").rglob("*.png"))] == times


def test_plain_integer_categories_are_named_by_their_ids_with_a_note(tmp_path):
    import datasets

    features = {
        "image": datasets.Image(),
        "objects": {
            "bbox": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "category": datasets.Sequence(datasets.Value("int64")),
        },
    }
    rows = {"image": [Image.new("RGB", (40, 40))], "objects": [{"bbox": [[1.0, 2.0, 10.0, 10.0]], "category": [3]}]}
    saved = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    datasets.DatasetDict({"train": saved, "val": saved}).save_to_disk(str(tmp_path / "hf"))
    report = _report(tmp_path / "hf", tmp_path / "cache")
    assert report.all_errors == [] and report.categories == {3: "3"}
    assert "objects.category is no ClassLabel: the class names are its ids" in report.notes


def test_one_dataset_instead_of_a_dict_and_a_missing_package_are_named(tmp_path, monkeypatch):
    import datasets

    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "one"))
    with pytest.raises(DatasetError, match=r"holds one Dataset: keep a DatasetDict\(\{'train'"):
        find_splits("hf", str(tmp_path / "one"))
    real_import = builtins.__import__

    def without_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_datasets)
    with pytest.raises(DatasetError, match=r"data=hf needs the `datasets` package: pip install 'detr_ft\[hf\]'"):
        find_splits("hf", str(tmp_path / "one"))
