"""`python -m detr_ft.data.check data=...`: validate a COCO-format dataset before training on it (a Hydra
app over conf/check.yaml, which composes the main config's `data` group: `data=coco data.root=/x` works).

Reports missing or unreadable images, image sizes that disagree with the file (EXIF rotation), boxes
outside the image or with zero area, annotations of unknown categories, duplicate ids, splits whose
categories differ, images without annotations (a note: DETR trains on them) and class counts; warns when an
image holds more objects than `model.num_queries` (the model can never recall them all). Exits 1 when there
are errors.
"""

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from detr_ft.command_line import hydra_app
from detr_ft.config import exit_if_missing
from detr_ft.data.coco import annotation_problems, describe, has_valid_bbox, load_annotation_file
from detr_ft.data.datamodule import split_paths
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.data.object_counts import ObjectCounts

MAX_LISTED = 10
PROGRESS_EVERY = 5000  # images; decoding COCO's 118k train images takes minutes


@dataclass
class SplitReport:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # annotations per category name
    category_ids: list = field(default_factory=list)
    objects: ObjectCounts = field(default_factory=lambda: ObjectCounts(()))


def _read(annotations_file: Path, report: SplitReport) -> dict | None:
    """The file's COCO dict, or None with the reason in `report.errors`."""
    try:
        return load_annotation_file(annotations_file)
    except (FileNotFoundError, ValueError) as error:
        report.errors.append(str(error))
        return None


def _check_annotations(data: dict, images: dict, categories: dict, report: SplitReport) -> set:
    """Ids, categories and boxes of every annotation; -> the ids of the images that have one."""
    seen, annotated, category_ids = set(), set(), set(categories)
    for annotation in data["annotations"]:
        where = describe(annotation)
        if annotation.get("id") in seen:
            report.errors.append(f"duplicate annotation id {annotation.get('id')}")
        seen.add(annotation.get("id"))
        report.errors += annotation_problems(annotation, category_ids)
        image = images.get(annotation.get("image_id"))
        if image is None:
            report.errors.append(f"{where}: no image with that id")
            continue
        annotated.add(annotation["image_id"])
        report.counts[categories.get(annotation.get("category_id"), "?")] += 1
        if not has_valid_bbox(annotation):
            continue
        x, y, w, h = bbox = annotation["bbox"]
        width, height = image.get("width", float("inf")), image.get("height", float("inf"))
        if w <= 0 or h <= 0:
            report.errors.append(f"{where}: zero-area box {bbox}")
        elif x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1:  # 1 px slack for rounding
            report.errors.append(f"{where}: box {bbox} outside the {image.get('width')}x{image.get('height')} image")
    return annotated


def _check_images(images_dir: Path, images: dict, report: SplitReport, read_images: bool) -> None:
    """Every image exists, decodes, and has the size the annotation file says (as displayed)."""
    for done, (image_id, image) in enumerate(images.items(), 1):
        if read_images and done % PROGRESS_EVERY == 0:
            print(f"   read {done} of {len(images)} images", file=sys.stderr, flush=True)
        path = images_dir / str(image.get("file_name"))
        if not path.is_file():
            report.errors.append(f"image {image_id}: file {path} is missing")
            continue
        if not read_images:
            continue
        try:
            height, width = load_rgb(path).shape[-2:]
        except BadImageError as error:
            report.errors.append(f"image {image_id}: {error}")
            continue
        said = (image.get("width"), image.get("height"))
        if said != (width, height):
            rotated = said == (height, width)
            hint = " (EXIF-rotated photo? boxes must be in the displayed orientation)" if rotated else ""
            report.errors.append(
                f"image {image_id}: {path} is {width}x{height} as displayed but the annotation file says "
                f"{said[0]}x{said[1]}{hint}"
            )


def check_split(images_dir: Path, annotations_file: Path, read_images: bool = True) -> SplitReport:
    """Everything that can be wrong with one split (folder of images + annotation file)."""
    report = SplitReport()
    if not images_dir.is_dir():
        report.errors.append(f"image folder {images_dir} does not exist")
    data = _read(annotations_file, report)
    if data is None:
        return report
    images = {}
    for image in data["images"]:
        if image.get("id") in images:
            report.errors.append(f"duplicate image id {image.get('id')}")
        images[image.get("id")] = image
    categories = {c.get("id"): c.get("name") for c in data["categories"]}
    if len(categories) != len(data["categories"]):
        report.errors.append("duplicate category ids")
    report.category_ids = sorted(categories, key=str)
    annotated = _check_annotations(data, images, categories, report)
    report.objects = ObjectCounts.from_coco(data)
    if images_dir.is_dir():
        _check_images(images_dir, images, report, read_images)
    report.notes.append(f"{len(images)} images, {len(data['annotations'])} annotations, {len(categories)} categories")
    for name in sorted(set(categories.values()) - set(report.counts), key=str):
        report.notes.append(f"category {name!r} has no annotations in this split")
    if len(images) > len(annotated):
        report.notes.append(
            f"{len(images) - len(annotated)} of {len(images)} images have no annotations "
            "(fine: DETR learns 'no object' from them)"
        )
    return report


def report(splits: dict[str, tuple[Path, Path]], read_images: bool = True, num_queries: int | None = None) -> int:
    """Print a report for each split (objects per image against `num_queries` when given); return the number
    of errors."""
    total, first_ids = 0, None
    for split, (images_dir, annotations_file) in splits.items():
        result = check_split(images_dir, annotations_file, read_images)
        if result.category_ids and first_ids is None:
            first_ids = (split, result.category_ids)
        elif result.category_ids and result.category_ids != first_ids[1]:
            result.errors.append(
                f"categories {result.category_ids} differ from the {first_ids[0]} split's {first_ids[1]} "
                "(every split must share one category list)"
            )
        print(f"== {split}: {annotations_file}")
        print("   classes: " + (", ".join(f"{name}={n}" for name, n in sorted(result.counts.items())) or "none"))
        for note in result.notes:
            print(f"   note: {note}")
        if num_queries is not None and result.objects.per_image:
            print(f"   {result.objects.describe(num_queries)}")
            if warning := result.objects.warning(num_queries):
                print(f"   WARNING: {warning}")
        for error in result.errors[:MAX_LISTED]:
            print(f"   ERROR: {error}")
        if len(result.errors) > MAX_LISTED:
            print(f"   ... and {len(result.errors) - MAX_LISTED} more errors")
        print(f"   {'OK' if not result.errors else f'{len(result.errors)} error(s)'}")
        total += len(result.errors)
    return total


def splits_from_config(data_cfg) -> dict[str, tuple[Path, Path]]:
    """The splits a `data` config points at: its datamodule's `paths` (synthetic data is generated on first
    use). Building the datamodule reads and validates the train annotation file; when that fails, a COCO-style
    config's path keys are used instead, so that the report lists everything wrong with the files."""
    try:
        return instantiate(data_cfg, batch_size=1, num_workers=0).paths
    except InstantiationException as error:
        keys = ("train_images", "train_annotations", "val_images", "val_annotations")
        if not all(data_cfg.get(key) for key in keys):
            raise
        print(f"note: the datamodule could not be built ({error.__cause__ or error}); checking its files")
        test = {key: data_cfg.get(key) for key in ("test_images", "test_annotations")}
        return split_paths(*(data_cfg[key] for key in keys), **test)


@hydra_app("check")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.data.check")
    try:
        splits = splits_from_config(cfg.data)
    except (FileNotFoundError, ValueError, InstantiationException) as error:
        sys.exit(f"error: {error}")
    errors = report(splits, num_queries=cfg.model.num_queries)
    print("dataset OK" if not errors else f"dataset has {errors} error(s)")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
