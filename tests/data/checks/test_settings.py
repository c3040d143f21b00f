"""data.* values are range-checked where the datamodule is built, before any data is read: each wrong one is named
with what is valid (instead of failing deep inside PyTorch, or training on 1-pixel images), and a run stops on
them with that message and no traceback."""

import pytest

from detr_ft.data import DetectionDataModule
from detr_ft.data.checks.split import DatasetError
from tests.conftest import TINY_OVERRIDES, run_cli

SIDE = "an integer >= 32 (pixels; the backbone downsamples by 32)"


@pytest.mark.parametrize(
    "key, value, valid",
    [
        ("train_scales", [0, 64], f"a non-empty list of image sides, each {SIDE}"),
        ("train_scales", [], "a non-empty list of image sides"),
        ("train_scales", "800", "a non-empty list of image sides"),
        ("eval_scale", 1, SIDE),
        ("eval_scale", "800", SIDE),
        ("max_size", 1, f"null (no cap) or {SIDE}"),
        ("batch_size", 0, "an integer >= 1 (train.batch_size in a run)"),
        ("num_workers", -1, "an integer >= 0"),
        ("num_classes", 0, "null (read from the data) or an integer >= 1"),
        ("label_mode", "ids", "one of contiguous, category_id"),
        ("format", "csv", "one of coco, yolo, voc, hf"),
        ("classes", ["cat", "cat"], "null or a list of distinct, non-empty class names"),
        ("crop", "yes", "true or false"),
        ("pin_memory", 1, "null (on when CUDA is available), true or false"),
    ],
)
def test_each_value_out_of_range_is_named_with_what_is_valid(key, value, valid):
    with pytest.raises(DatasetError) as raised:
        DetectionDataModule(**{key: value})
    assert f"data.{key}={value!r}: want {valid}" in str(raised.value)


def test_several_are_named_at_once():
    with pytest.raises(DatasetError) as raised:
        DetectionDataModule(eval_scale=0, max_size=2)
    assert "data.eval_scale=0" in str(raised.value) and "data.max_size=2" in str(raised.value)


def test_a_run_with_one_stops_naming_it_without_a_traceback(tmp_path):
    result = run_cli(["-m", "detr_ft", *TINY_OVERRIDES, f"data.cache_dir={tmp_path}", "data.eval_scale=1"], tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert f"data.eval_scale=1: want {SIDE}" in result.stderr
