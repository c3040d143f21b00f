"""YOLO (Ultralytics) data: a data.yaml naming the classes (`names`) and each split's image folder (`train`,
`val`, optional `test`, relative to its `path` key, itself relative to the YAML's folder), and for each image a
.txt of the same name in the matching labels folder (the last `images` of the path becomes `labels`; without
one, beside the image) with one line per box, `class x_center y_center width height`, the four normalised to
the image's size. An image without a label file holds no objects. Class ids are the category ids."""

from functools import partial
from pathlib import Path

import yaml

from detr_ft.data.formats import DatasetError, Split
from detr_ft.data.images import displayed_size

IMAGE_SUFFIXES = {".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
LINE = "want 5 numbers: class x_center y_center width height, the last four normalised to 0-1"
NOT_LABELS = {"classes.txt"}  # LabelImg writes its class list beside the labels


def _config(root: Path) -> tuple[Path, dict]:
    candidates = [root] if root.is_file() else [root / "data.yaml", root / "data.yml"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise DatasetError(f"data.root={root} holds no data.yaml (data=yolo wants its folder, or its path)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{path} is not readable YAML: {error}") from None
    if not isinstance(config, dict):
        raise DatasetError(f"{path} holds no mapping of keys (want names, train, val and optionally path, test)")
    return path, config


def _names(config: dict, path: Path) -> list[str]:
    names = config.get("names")
    if isinstance(names, dict) and sorted(names, key=str) == list(range(len(names))):
        names = [names[index] for index in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: 'names' must list the class names ([a, b] or {{0: a, 1: b}}), got {names!r}")
    if config.get("nc") not in (None, len(names)):
        raise DatasetError(f"{path}: 'nc' {config['nc']!r} disagrees with the {len(names)} 'names'")
    return [str(name) for name in names]


def _labels_folder(images: Path) -> Path:
    parts = images.parts
    if "images" not in parts:
        return images
    last = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:last], "labels", *parts[last + 1 :])


def yolo_splits(root: Path) -> dict[str, Split]:
    path, config = _config(root)
    base = path.parent / str(config.get("path") or "")
    names = _names(config, path)
    splits = {}
    for split in ("train", "val", "test"):
        entry = config.get(split)
        if entry is None and split == "test":
            continue
        if not isinstance(entry, str):
            raise DatasetError(
                f"{path}: '{split}' must name the {split} images' folder (relative to {base}), got {entry!r}"
            )
        images = base / entry
        if not images.exists() and entry.startswith("../"):  # Roboflow writes ../train/images; Ultralytics retries
            images = base / entry[3:]
        splits[split] = Split(images, path, partial(read_yolo, images, names))
    return splits


def _boxes(label: Path, image_id: int, size: tuple, classes: int, annotations: list, report) -> None:
    """Appends the label file's boxes (in pixels; none when the image's size is unknown) to `annotations`."""
    try:
        lines = label.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        report.errors.append(f"label file {label} cannot be read as text ({error})")
        return
    for number, line in enumerate(lines, 1):
        fields, where = line.split(), f"{label} line {number}"
        try:
            values = [float(field) for field in fields]
        except ValueError:
            values = []
        if not fields:
            continue
        if len(values) != 5:
            report.errors.append(f"{where}: {line.strip()!r} ({LINE})")
            continue
        category, x, y, w, h = values
        if not (category.is_integer() and 0 <= category < classes):
            report.errors.append(f"{where}: class id {fields[0]} names no class of data.yaml (want 0 to {classes - 1})")
        elif not all(0 <= value <= 1 for value in (x, y, w, h)):
            report.errors.append(f"{where}: box {' '.join(fields[1:])} is not normalised to 0-1 ({LINE})")
        elif size[0] is not None:
            width, height = size
            bbox = [round(v, 6) for v in ((x - w / 2) * width, (y - h / 2) * height, w * width, h * height)]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(category), "bbox": bbox}
                | {"area": bbox[2] * bbox[3], "iscrowd": 0, "source": where}
            )


def read_yolo(images: Path, names: list[str], report) -> dict:
    data = {"images": [], "annotations": [], "categories": [{"id": i, "name": name} for i, name in enumerate(names)]}
    if not images.is_dir():
        return data  # the validator names the missing folder
    labels = _labels_folder(images)
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for image_id, file in enumerate(files, 1):
        try:
            width, height = displayed_size(file)
        except OSError:  # the validator names the file and what is wrong with it
            width = height = None
        relative = file.relative_to(images)
        data["images"].append({"id": image_id, "file_name": relative.as_posix(), "width": width, "height": height})
        label = labels / relative.with_suffix(".txt")
        if label.is_file():
            _boxes(label, image_id, (width, height), len(names), data["annotations"], report)
    expected = {labels / file.relative_to(images).with_suffix(".txt") for file in files}
    for orphan in sorted(set(labels.rglob("*.txt")) - expected):
        if orphan.name not in NOT_LABELS:
            report.errors.append(f"label file {orphan} has no image (want an image of the same name in {images})")
    return data
