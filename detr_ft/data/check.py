"""`python -m detr_ft.data.check data=...`: validate a COCO-format dataset before training on it.

Reports missing or unreadable images, boxes outside the image or with zero area, annotations of unknown
categories, duplicate ids, images without annotations (a note: DETR trains on them) and class counts.
Exits 1 when there are errors.
"""

import json
import sys
from collections import Counter
from pathlib import Path

from detr_ft.data.images import BadImageError, load_rgb

MAX_LISTED = 10


def check_split(
    images_dir: Path, annotations_file: Path, read_images: bool = True
) -> tuple[list[str], list[str], Counter]:
    """-> (errors, notes, annotations per category name) for one split."""
    errors, notes = [], []
    if not annotations_file.is_file():
        return [f"annotation file {annotations_file} does not exist"], notes, Counter()
    if not images_dir.is_dir():
        errors.append(f"image folder {images_dir} does not exist")
    try:
        data = json.loads(annotations_file.read_text())
    except json.JSONDecodeError as error:
        return [f"{annotations_file} is not valid JSON: {error}"], notes, Counter()
    images = {}
    for image in data.get("images", []):
        if image.get("id") in images:
            errors.append(f"duplicate image id {image.get('id')}")
        images[image.get("id")] = image
    categories = {c.get("id"): c.get("name") for c in data.get("categories", [])}
    if len(categories) != len(data.get("categories", [])):
        errors.append("duplicate category ids")
    seen_annotations, annotated, counts = set(), set(), Counter()
    for annotation in data.get("annotations", []):
        where = f"annotation {annotation.get('id')} (image {annotation.get('image_id')})"
        if annotation.get("id") in seen_annotations:
            errors.append(f"duplicate annotation id {annotation.get('id')}")
        seen_annotations.add(annotation.get("id"))
        if annotation.get("category_id") not in categories:
            errors.append(f"{where}: unknown category id {annotation.get('category_id')}")
        image = images.get(annotation.get("image_id"))
        if image is None:
            errors.append(f"{where}: no image with that id")
            continue
        annotated.add(annotation["image_id"])
        counts[categories.get(annotation.get("category_id"), "?")] += 1
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            errors.append(f"{where}: missing or malformed bbox {bbox!r}")
            continue
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            errors.append(f"{where}: zero-area box {bbox}")
        elif (
            x < 0
            or y < 0
            or x + w > image.get("width", float("inf")) + 1
            or y + h > image.get("height", float("inf")) + 1
        ):
            errors.append(f"{where}: box {bbox} outside the {image.get('width')}x{image.get('height')} image")
    for image_id, image in images.items():
        path = images_dir / str(image.get("file_name"))
        if not path.is_file():
            errors.append(f"image {image_id}: file {path} is missing")
        elif read_images:
            try:
                load_rgb(path)
            except BadImageError as error:
                errors.append(f"image {image_id}: {error}")
    empty = len(images) - len(annotated)
    if empty:
        notes.append(f"{empty} of {len(images)} images have no annotations (fine: DETR learns 'no object' from them)")
    return errors, notes, counts


def report(splits: dict[str, tuple[Path, Path]]) -> int:
    """Print a report for each split; return the number of errors."""
    total = 0
    for split, (images_dir, annotations_file) in splits.items():
        errors, notes, counts = check_split(images_dir, annotations_file)
        print(f"== {split}: {annotations_file}")
        print("   classes: " + (", ".join(f"{name}={n}" for name, n in sorted(counts.items())) or "none"))
        for note in notes:
            print(f"   note: {note}")
        for error in errors[:MAX_LISTED]:
            print(f"   ERROR: {error}")
        if len(errors) > MAX_LISTED:
            print(f"   ... and {len(errors) - MAX_LISTED} more errors")
        print(f"   {'OK' if not errors else f'{len(errors)} error(s)'}")
        total += len(errors)
    return total


def splits_from_config(data_cfg) -> dict[str, tuple[Path, Path]]:
    """The splits a `data` config points at (for synthetic configs, after generating them)."""
    if "variant" in data_cfg:
        from detr_ft.data.synthetic import ensure_dataset

        folder = ensure_dataset(
            data_cfg.cache_dir,
            data_cfg.variant,
            data_cfg.train_size,
            data_cfg.val_size,
            data_cfg.image_size,
            data_cfg.seed,
        )
        return {s: (folder / s, folder / "annotations" / f"instances_{s}.json") for s in ("train", "val")}
    splits = {
        "train": (Path(data_cfg.train_images), Path(data_cfg.train_annotations)),
        "val": (Path(data_cfg.val_images), Path(data_cfg.val_annotations)),
    }
    if data_cfg.get("test_images") and data_cfg.get("test_annotations"):
        splits["test"] = (Path(data_cfg.test_images), Path(data_cfg.test_annotations))
    return splits


def main(overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from detr_ft.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    errors = report(splits_from_config(cfg.data))
    print("dataset OK" if not errors else f"dataset has {errors} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
