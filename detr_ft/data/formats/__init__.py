"""Each data format read into the one COCO-like form that the validator (detr_ft/data/checks/) and the dataset
take: a dict of `images` (id, file_name relative to the split's image folder, width, height), `annotations` (id,
image_id, category_id, bbox [x, y, width, height] in pixels, iscrowd) and `categories` (id, name).

A reader appends its format's own faults to the report it is given, naming the file and the line, element or
row (an annotation's optional `source` key names where it came from in the validator's messages too); the
validator then checks what every format shares. COCO files are read as they are; the others' COCO form is kept
in the cache (export.py), so evaluation, the overview and the run record read plain COCO whatever came in.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("coco", "yolo", "voc", "hf")
INSTALL_HF = "pip install 'detr_ft[hf]' (or pip install 'datasets>=2.14')"


class DatasetError(ValueError):
    """A dataset that cannot be trained on, with the file, the ids, the keys and what is valid."""

    def __repr__(self) -> str:  # Hydra's instantiate quotes repr(error): keep the message's lines readable
        return f"DatasetError: {self}"


@dataclass(frozen=True)
class Split:
    images: Path  # the folder its images' file_name are relative to
    source: Path  # what messages name: the COCO file, data.yaml, the XML folder, the saved dataset
    read: Callable | None = None  # read(report) -> the COCO-like dict; None: `source` is a COCO file, read as is


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """data.cache_dir, else $DETR_FT_CACHE, else ~/.cache/detr_ft (the configs' default)."""
    return Path(cache_dir or os.environ.get("DETR_FT_CACHE") or "~/.cache/detr_ft").expanduser()


def find_splits(
    format: str = "coco",
    root: str | None = None,
    classes: list[str] | None = None,
    cache_dir: str | None = None,
    **paths: str | None,
) -> dict[str, Split]:
    """{"train": Split, "val": Split, and "test" where the data has one}. `paths`: data=coco's explicit
    train_images, train_annotations, val_images, ... (they win over what `root` holds)."""
    if format not in FORMATS:
        raise DatasetError(f"data.format={format!r} is unknown: use one of {', '.join(FORMATS)}")
    if format == "coco":
        from detr_ft.data.formats.coco import coco_splits

        return coco_splits(root, **paths)
    if root is None or str(root).strip() in ("", "None", "???"):
        raise DatasetError(f"data={format} needs data.root: the dataset's folder (see docs/data.md)")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data.root={root} does not exist")
    if format == "yolo":
        from detr_ft.data.formats.yolo import yolo_splits

        return yolo_splits(root)
    if format == "voc":
        from detr_ft.data.formats.voc import voc_splits

        return voc_splits(root, list(classes) if classes else None)
    from detr_ft.data.formats.hf import hf_splits

    return hf_splits(root, cache_folder(cache_dir))
