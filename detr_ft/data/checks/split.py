"""The one validator of a split, shared by `python -m detr_ft.check` (which lists every problem) and training
(`read_split`: the datamodule stops at construction, before any training step, with the first problems).

A split is a folder of images and its annotations in any format (detr_ft/data/formats/), read into the COCO
form that everything here checks: one pass over the entries and one header read per image (detr_ft/data/
checks/images.py). Errors name the image or annotation (or the format's file and line), the key and what is
valid; the annotation file is named once, by the report or the DatasetError that carries them. Boxes that only
poke out of their image are clipped to it, with a warning that counts them; a box entirely outside is an error.
"""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detr_ft.data.checks.annotations import check_annotations, check_categories
from detr_ft.data.checks.images import check_images, is_id
from detr_ft.data.checks.object_counts import ObjectCounts
from detr_ft.data.formats import DatasetError
from detr_ft.data.formats.coco import load_annotation_file

log = logging.getLogger(__name__)

SHOWN_IN_ERROR = 5  # problems quoted by a DatasetError; the check lists them all


@dataclass
class SplitReport:
    annotations_file: Path  # what the messages name: a COCO file, or another format's source
    errors: list[str] = field(default_factory=list)
    bad_files: dict = field(default_factory=dict)  # image id -> what is wrong with its file (skippable)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # annotations per category name, crowd regions left out
    categories: dict = field(default_factory=dict)  # {id: name}
    objects: ObjectCounts = field(default_factory=lambda: ObjectCounts(()))
    data: dict | None = None  # the COCO form, boxes clipped to their images; None when unreadable

    @property
    def all_errors(self) -> list[str]:
        return self.errors + list(self.bad_files.values())


def validate_split(
    images_dir: str | Path,
    annotations_file: str | Path,
    split: str = "train",
    read: Callable | None = None,
    decode: bool = False,
) -> SplitReport:
    """Everything wrong with one split. `read(report)`: the format's reader (detr_ft/data/formats/); None reads
    `annotations_file` as COCO. `decode`: decode every image too (the data check), not only its header. `split`
    only words the messages: every split needs annotations (training learns nothing from none, and COCO
    evaluation of none is meaningless)."""
    images_dir, report = Path(images_dir), SplitReport(Path(annotations_file))
    try:
        data = report.data = read(report) if read else load_annotation_file(annotations_file)
    except (FileNotFoundError, ValueError) as error:
        report.errors.append(str(error))
    if not images_dir.is_dir():
        report.errors.insert(0, f"image folder {images_dir} does not exist")
    if report.data is None:
        return report
    report.categories = check_categories(data, report)
    images = check_images(data, images_dir, report, f"decoding the {split} images" if decode else None)
    check_annotations(data, images, report.categories, report)
    if not data["annotations"]:
        report.errors.append(f"the {split} split has no annotations: a split needs at least one box")
    report.objects = ObjectCounts.from_coco(data)
    annotated = {a["image_id"] for a in data["annotations"] if isinstance(a, dict) and is_id(a.get("image_id"))}
    annotated &= set(images)
    report.notes.append(
        f"{len(images)} images, {len(data['annotations'])} annotations, {len(report.categories)} categories"
    )
    for name in sorted(set(report.categories.values()) - set(report.counts)):
        report.notes.append(f"category {name!r} has no annotations in this split")
    if len(images) > len(annotated):
        report.notes.append(
            f"{len(images) - len(annotated)} of {len(images)} images have no annotations "
            "(fine: DETR learns 'no object' from them)"
        )
    return report


def _named(path: Path) -> str:
    return f"annotation file {path}" if path.suffix == ".json" else str(path)


def _raise(report: SplitReport, split: str, errors: list[str], hint: str = "") -> None:
    shown = "\n  ".join(errors[:SHOWN_IN_ERROR])
    more = f"\n  ... and {len(errors) - SHOWN_IN_ERROR} more" if len(errors) > SHOWN_IN_ERROR else ""
    raise DatasetError(
        f"{_named(report.annotations_file)} ({split} split) has {len(errors)} problem(s):\n  {shown}{more}"
        f"\n{hint}`python -m detr_ft.check` with the same data=... keys lists every problem"
    )


def read_split(
    images_dir: str | Path,
    annotations_file: str | Path,
    split: str = "train",
    skip_bad_images: bool = False,
    read: Callable | None = None,
) -> dict:
    """The split's COCO-form dict, validated, boxes clipped to their images (warned); DatasetError when it
    cannot be trained on. `skip_bad_images`: images whose file is missing or unreadable are left out (with
    their annotations) and counted in a warning instead of stopping."""
    report = validate_split(images_dir, annotations_file, split, read)
    if report.errors:
        _raise(report, split, report.all_errors)
    if report.bad_files and not skip_bad_images:
        _raise(report, split, list(report.bad_files.values()), "Set data.skip_bad_images=true to skip such files; ")
    data = report.data
    if report.bad_files:
        bad, boxes = set(report.bad_files), len(data["annotations"])
        data["images"] = [image for image in data["images"] if image["id"] not in bad]
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in bad]
        report.warnings.append(
            f"skipped {len(bad)} of {len(bad) + len(data['images'])} images whose file is missing or unreadable, "
            f"with their {boxes - len(data['annotations'])} annotation(s) (data.skip_bad_images=true), e.g. "
            f"{next(iter(report.bad_files.values()))}"
        )
        if not data["annotations"]:
            _raise(report, split, [f"no annotated image of the {split} split is readable"])
    for warning in report.warnings:
        log.warning("%s (%s split): %s", _named(Path(annotations_file)), split, warning)
    return data
