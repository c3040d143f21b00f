"""Objects per image against model.num_queries: DETR can never recall more objects than it has queries, so the
data check and the training start-up report the counts and say what to set."""

from detr_ft.data.checks.object_counts import ObjectCounts
from detr_ft.data.checks.report import report
from detr_ft.data.formats import find_splits


def _coco(counts: list[int], crowd_on_first: int = 0) -> dict:
    images = [{"id": i} for i in range(len(counts))]
    annotations = [{"image_id": i, "iscrowd": 0} for i, n in enumerate(counts) for _ in range(n)]
    annotations += [{"image_id": 0, "iscrowd": 1}] * crowd_on_first
    return {"images": images, "annotations": annotations}


def test_largest_and_99th_percentile_count_every_image_and_leave_out_crowds():
    counts = ObjectCounts.from_coco(_coco([0] * 98 + [40, 61], crowd_on_first=70))
    assert counts.largest == 61 and counts.percentile_99 == 40 and len(counts.per_image) == 100
    assert ObjectCounts.from_coco(_coco([3, 1, 2])).percentile_99 == 3


def test_the_warning_says_how_many_images_are_capped_and_what_to_set():
    counts = ObjectCounts.from_coco(_coco([61, 25, 3, 0]))
    assert counts.warning(61) is None and counts.warning(100) is None
    warning = counts.warning(20)
    assert "2 of 4 images" in warning and "largest 61" in warning and "model.num_queries=100" in warning


def test_the_data_check_reports_objects_per_image_against_the_queries(synthetic_folder, capsys):
    splits = find_splits(
        train_images=synthetic_folder / "train",
        train_annotations=synthetic_folder / "annotations" / "instances_train.json",
        val_images=synthetic_folder / "val",
        val_annotations=synthetic_folder / "annotations" / "instances_val.json",
    )
    assert report(splits, num_queries=100)[0] == 0  # a warning, not an error
    printed = capsys.readouterr().out
    assert "objects per image: largest" in printed and "(model.num_queries=100)" in printed
    assert "WARNING" not in printed
    report(splits, num_queries=1)
    assert "WARNING" in capsys.readouterr().out
