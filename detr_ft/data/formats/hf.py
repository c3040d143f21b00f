"""Hugging Face `datasets` data in the object-detection form of its DETR fine-tuning guide, kept with
`save_to_disk`: a DatasetDict with `train`, `validation` (or `val`, `valid`) and optionally `test`, each row an
`image` and its `objects`: {"bbox": [[x, y, width, height], ...] in pixels, "category": [class id, ...]}.
`image_id`, `width` and `height` columns are used where present. Class names come from the `category`
feature's ClassLabel. The images are written once into the cache, one file per row, since training reads files.
"""

import hashlib
import json
import os
from functools import partial
from pathlib import Path

from detr_ft.data.formats import INSTALL_HF, DatasetError, Split
from detr_ft.data.images import PNG_SIGNATURE, displayed_size

SPLIT_NAMES = {"train": ("train",), "val": ("validation", "val", "valid"), "test": ("test",)}
FORM = "want 'image' and 'objects' = {'bbox': [[x, y, width, height], ...], 'category': [...]} (the DETR guide's)"


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"data=hf needs the `datasets` package: {INSTALL_HF}") from None
    return datasets


def _stat(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def hf_splits(root: Path, cache_dir: Path) -> dict[str, Split]:
    datasets = _datasets()
    try:
        saved = datasets.load_from_disk(str(root))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"data.root={root} is not a dataset kept with save_to_disk ({error})") from None
    if not isinstance(saved, datasets.DatasetDict):
        raise DatasetError(f"{root} holds one Dataset: keep a DatasetDict({{'train': ..., 'validation': ...}}) instead")
    # The cache folder is named by the dataset's files, so a changed dataset never reuses another's images.
    files = [[f["filename"], *_stat(f["filename"])] for part in saved.values() for f in part.cache_files]
    identity = hashlib.sha1(json.dumps([str(root.resolve()), files]).encode()).hexdigest()[:12]
    splits = {}
    for split, names in SPLIT_NAMES.items():
        name = next((name for name in names if name in saved), None)
        if name is None and split != "test":
            raise DatasetError(f"{root} has no {' or '.join(names)} split (it has {', '.join(saved)})")
        if name is not None:
            folder = cache_dir / "hf" / f"{root.name}-{identity}" / name
            splits[split] = Split(folder, root / name, partial(read_hf, saved[name], folder))
    return splits


def _class_names(feature) -> list[str] | None:
    """The ClassLabel names of `objects`' category, through any List/Sequence wrapping; None without one."""
    feature = getattr(feature, "feature", feature)
    category = feature.get("category") if isinstance(feature, dict) else None
    while category is not None and not hasattr(category, "names"):
        category = getattr(category, "feature", None)
    return list(category.names) if category is not None else None


def _write_image(image, folder: Path, index: int) -> str:
    """The row's image as a file in `folder` (rewritten only when its size changed); raises ValueError."""
    if not isinstance(image, dict) or not (image.get("bytes") or image.get("path")):
        raise ValueError(f"no image ({image!r:.60})")
    data = image.get("bytes") or Path(image["path"]).read_bytes()
    suffix = ".png" if data.startswith(PNG_SIGNATURE) else ".jpg" if data.startswith(b"\xff\xd8") else ".img"
    target = folder / f"{index:07d}{suffix}"
    if not target.is_file() or target.stat().st_size != len(data):
        staging = target.with_suffix(f".{os.getpid()}.partial")  # DDP's ranks may write the same file at once
        staging.write_bytes(data)
        staging.replace(target)
    return target.name


def _objects(objects) -> tuple[list, list]:
    """(bbox list, category list) from a dict of lists or a list of dicts."""
    if isinstance(objects, list):
        objects = {key: [o.get(key) if isinstance(o, dict) else None for o in objects] for key in ("bbox", "category")}
    if not isinstance(objects, dict):
        return [None], [None]
    return list(objects.get("bbox") or []), list(objects.get("category") or [])


def read_hf(dataset, folder: Path, report) -> dict:
    columns = dataset.column_names
    data = {"images": [], "annotations": [], "categories": []}
    folder.mkdir(parents=True, exist_ok=True)
    if "image" not in columns or "objects" not in columns:
        report.errors.append(f"no {'image' if 'image' not in columns else 'objects'} column (it has {columns}; {FORM})")
        return data
    names = _class_names(dataset.features["objects"])
    seen = set()
    for index, row in enumerate(dataset.cast_column("image", _datasets().Image(decode=False))):
        where = f"row {index}"
        try:
            file_name = _write_image(row["image"], folder, index)
        except (OSError, ValueError) as error:
            report.errors.append(f"{where}: 'image' cannot be read: {error}")
            continue
        width, height = row.get("width"), row.get("height")
        if not (width and height):
            try:
                width, height = displayed_size(folder / file_name)
            except OSError:  # the validator names the file and what is wrong with it
                width = height = None
        image = {"id": row.get("image_id", index + 1), "file_name": file_name, "width": width, "height": height}
        data["images"].append(image | {"source": where})
        boxes, categories = _objects(row["objects"])
        if len(boxes) != len(categories):
            report.errors.append(f"{where}: objects has {len(boxes)} 'bbox' but {len(categories)} 'category' ({FORM})")
            continue
        for number, (bbox, category) in enumerate(zip(boxes, categories, strict=True)):
            source = f"{where} objects.bbox[{number}]"
            if not isinstance(bbox, list | tuple) or len(bbox) != 4:
                report.errors.append(f"{source}: {bbox!r} is not [x, y, width, height] (4 numbers, in pixels)")
                continue
            seen.add(category if isinstance(category, int) else None)
            data["annotations"].append(
                {"id": len(data["annotations"]) + 1, "image_id": image["id"], "category_id": category}
                | {"bbox": list(bbox), "iscrowd": 0, "source": source}
            )
    if names is None:
        report.notes.append("objects.category is no ClassLabel: the class names are its ids")
        data["categories"] = [{"id": i, "name": str(i)} for i in sorted(seen - {None})]
    else:
        data["categories"] = [{"id": i, "name": name} for i, name in enumerate(names)]
    return data
