"""The one validator of a COCO-format split (a folder of images and an annotation file), shared by
`python -m detr_ft.check` (which lists every problem) and training (`read_split`: the datamodule stops at
construction, before any training step, with the first problems).

One pass over the JSON and one header read per image (detr_ft/data/image_files.py). Errors name the image or
annotation id, the JSON key and what is valid; the annotation file is named once, by the report or the
DatasetError that carries them. Boxes that only poke out of their image are clipped to it, with a warning
that counts them; a box entirely outside is an error.
"""

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from detr_ft.data.annotation_file import load_annotation_file
from detr_ft.data.image_files import displayed_size, escapes_folder
from detr_ft.data.object_counts import ObjectCounts

log = logging.getLogger(__name__)

SHOWN_IN_ERROR = 5  # problems quoted by a DatasetError; the check lists them all
BOX = "'bbox' must be [x, y, width, height]: 4 finite numbers, width and height > 0"


class DatasetError(ValueError):
    """A dataset that cannot be trained on, with the annotation file, the ids, the keys and what is valid."""

    def __repr__(self) -> str:  # Hydra's instantiate quotes repr(error): keep the message's lines readable
        return f"DatasetError: {self}"


@dataclass
class SplitReport:
    annotations_file: Path
    errors: list[str] = field(default_factory=list)
    bad_files: dict = field(default_factory=dict)  # image id -> what is wrong with its file (skippable)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # annotations per category name
    category_ids: list = field(default_factory=list)
    objects: ObjectCounts = field(default_factory=lambda: ObjectCounts(()))
    data: dict | None = None  # the file's content with boxes clipped to their images; None when unreadable

    @property
    def all_errors(self) -> list[str]:
        return self.errors + list(self.bad_files.values())


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _image_size(image: dict) -> tuple[float, float] | None:
    width, height = image.get("width"), image.get("height")
    if _is_number(width) and _is_number(height) and width > 0 and height > 0:
        return width, height
    return None


def _check_images(data: dict, images_dir: Path, report: SplitReport) -> dict:
    """-> {id: image}; every image's keys, the file its `file_name` names and that file's size."""
    images = {}
    for image in data["images"]:
        image_id, name = image.get("id"), image.get("file_name")
        where = f"image id {image_id} ({name!r})"
        if image_id in images:
            report.errors.append(f"{where}: duplicate image id {image_id} ('id' must be unique among 'images')")
            continue
        images[image_id] = image
        size = _image_size(image)
        if size is None:
            report.errors.append(
                f"{where}: 'width' {image.get('width')!r} and 'height' {image.get('height')!r} must be pixel counts > 0"
            )
        if not isinstance(name, str) or not name:
            report.errors.append(f"{where}: 'file_name' must name a file inside {images_dir}")
        elif escapes_folder(images_dir, name):
            report.errors.append(
                f"{where}: 'file_name' leaves the image folder {images_dir} (want a path relative to it, "
                "without '..' or a leading '/')"
            )
        elif images_dir.is_dir():
            _check_file(images_dir / name, image, size, report)
    return images


def _check_file(path: Path, image: dict, size: tuple | None, report: SplitReport) -> None:
    try:
        width, height = displayed_size(path)
    except OSError as error:
        report.bad_files[image.get("id")] = f"image id {image.get('id')}: file {path} {error}"
        return
    if size is not None and size != (width, height):
        rotated = size == (height, width)
        hint = " (EXIF-rotated photo? boxes must be in the displayed orientation)" if rotated else ""
        report.errors.append(
            f"image id {image.get('id')}: {path} is {width}x{height} as displayed but the annotation file says "
            f"'width' {size[0]}, 'height' {size[1]}{hint}"
        )


def _box_problem(bbox, size: tuple | None) -> tuple[str | None, list | None]:
    """-> (what is wrong with the box, or None; the box clipped to its image when it pokes out, or None)."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        return f"malformed 'bbox' {bbox!r} ({BOX})", None
    x, y, w, h = bbox
    if not all(math.isfinite(v) for v in bbox):
        return f"'bbox' {bbox} holds a NaN or infinite value ({BOX})", None
    if w < 0 or h < 0:
        return f"'bbox' {bbox} has a negative width or height ({BOX})", None
    if w == 0 or h == 0:
        return f"zero-area 'bbox' {bbox} ({BOX})", None
    if size is None:
        return None, None
    width, height = size
    left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if right <= left or bottom <= top:
        return (
            f"'bbox' {bbox} lies entirely outside the {width}x{height} image (want x < width, y < height, "
            "x + w > 0 and y + h > 0)"
        ), None
    if (left, top, right, bottom) == (x, y, x + w, y + h):
        return None, None
    return None, [left, top, right - left, bottom - top]


def _check_annotations(data: dict, images: dict, categories: dict, report: SplitReport) -> None:
    seen, clipped = set(), []
    for annotation in data["annotations"]:
        annotation_id, image_id = annotation.get("id"), annotation.get("image_id")
        where = f"annotation id {annotation_id} (image {image_id})"
        if annotation_id in seen:
            report.errors.append(f"{where}: duplicate annotation id {annotation_id} ('id' must be unique)")
        seen.add(annotation_id)
        if annotation.get("category_id") not in categories:
            report.errors.append(
                f"{where}: unknown category_id {annotation.get('category_id')!r} (want one of the file's "
                f"'categories' ids: {sorted(categories, key=str)})"
            )
        image = images.get(image_id)
        if image is None:
            report.errors.append(f"{where}: 'image_id' {image_id!r} names no entry of 'images'")
        problem, inside = _box_problem(annotation.get("bbox"), _image_size(image) if image else None)
        if problem:
            report.errors.append(f"{where}: {problem}")
        elif inside is not None:
            clipped.append((annotation_id, annotation["bbox"]))
            annotation["bbox"] = inside
        report.counts[categories.get(annotation.get("category_id"), "?")] += 1
    if clipped:
        report.warnings.append(
            f"clipped {len(clipped)} box(es) that reach past their image's edge to the image "
            f"(e.g. annotation id {clipped[0][0]}: {clipped[0][1]})"
        )


def validate_split(images_dir: str | Path, annotations_file: str | Path, split: str = "train") -> SplitReport:
    """Everything wrong with one split. `split` only words the messages: every split needs annotations
    (training learns nothing from none, and COCO evaluation of none is meaningless)."""
    images_dir, report = Path(images_dir), SplitReport(Path(annotations_file))
    if not images_dir.is_dir():
        report.errors.append(f"image folder {images_dir} does not exist")
    try:
        data = report.data = load_annotation_file(annotations_file)
    except (FileNotFoundError, ValueError) as error:
        report.errors.append(str(error))
        return report
    categories = {c.get("id"): c.get("name") for c in data["categories"] if isinstance(c, dict)}
    if len(categories) != len(data["categories"]):
        report.errors.append("duplicate category ids, or a category that is not an object ('categories')")
    report.category_ids = sorted(categories, key=str)
    images = _check_images(data, images_dir, report)
    _check_annotations(data, images, categories, report)
    if not data["annotations"]:
        report.errors.append(
            f"the {split} split has no annotations ('annotations' is empty): a split needs at least one box"
        )
    report.objects = ObjectCounts.from_coco(data)
    annotated = {a.get("image_id") for a in data["annotations"]}
    report.notes.append(f"{len(images)} images, {len(data['annotations'])} annotations, {len(categories)} categories")
    for name in sorted(set(categories.values()) - set(report.counts), key=str):
        report.notes.append(f"category {name!r} has no annotations in this split")
    if len(images) > len(annotated & set(images)):
        report.notes.append(
            f"{len(images) - len(annotated & set(images))} of {len(images)} images have no annotations "
            "(fine: DETR learns 'no object' from them)"
        )
    return report


def _raise(report: SplitReport, split: str, errors: list[str], hint: str = "") -> None:
    shown = "\n  ".join(errors[:SHOWN_IN_ERROR])
    more = f"\n  ... and {len(errors) - SHOWN_IN_ERROR} more" if len(errors) > SHOWN_IN_ERROR else ""
    raise DatasetError(
        f"annotation file {report.annotations_file} ({split} split) has {len(errors)} problem(s):\n  {shown}{more}"
        f"\n{hint}`python -m detr_ft.check` with the same data=... keys lists every problem"
    )


def read_split(
    images_dir: str | Path, annotations_file: str | Path, split: str = "train", skip_bad_images: bool = False
) -> dict:
    """The split's annotation dict, validated, boxes clipped to their images (warned); DatasetError when it
    cannot be trained on. `skip_bad_images`: images whose file is missing or unreadable are left out (with
    their annotations) and counted in a warning instead of stopping."""
    report = validate_split(images_dir, annotations_file, split)
    if report.errors:
        _raise(report, split, report.all_errors)
    if report.bad_files and not skip_bad_images:
        _raise(report, split, list(report.bad_files.values()), "Set data.skip_bad_images=true to skip such files; ")
    data = report.data
    if report.bad_files:
        bad = set(report.bad_files)
        data["images"] = [image for image in data["images"] if image.get("id") not in bad]
        data["annotations"] = [a for a in data["annotations"] if a.get("image_id") not in bad]
        report.warnings.append(
            f"skipped {len(bad)} of {len(bad) + len(data['images'])} images whose file is missing or unreadable "
            f"(data.skip_bad_images=true), e.g. {next(iter(report.bad_files.values()))}"
        )
        if not data["annotations"]:
            _raise(report, split, [f"no annotated image of the {split} split is readable"])
    for warning in report.warnings:
        log.warning("%s (%s split): %s", annotations_file, split, warning)
    return data
