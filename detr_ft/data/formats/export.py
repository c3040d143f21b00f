"""Data in COCO form on disk: the cached COCO file of a split read from another format (evaluation, the overview
and the run record read it), and `python -m detr_ft.check ... export=coco out=DIR`, a folder in Roboflow's
COCO layout (train/, valid/, test/, each holding its images and _annotations.coco.json) that data=coco reads."""

import hashlib
import json
import os
import shutil
from pathlib import Path

from detr_ft.data.formats import DatasetError
from detr_ft.data.formats.coco import ROBOFLOW_FILE

EXPORT_FOLDERS = {"train": "train", "val": "valid", "test": "test"}


def coco_json(data: dict) -> str:
    """The dict as COCO JSON, without the `source` keys that readers add for messages."""
    plain = {key: data[key] for key in ("images", "annotations", "categories")}
    for key in ("images", "annotations"):
        plain[key] = [{k: v for k, v in entry.items() if k != "source"} for entry in plain[key]]
    return json.dumps(plain)


def _write(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")  # DDP's ranks may write it at once
    staging.write_text(text)
    staging.replace(path)  # whole or absent, never half written


def keep_as_coco(data: dict, cache_dir: str | Path, name: str) -> Path:
    """The COCO file holding `data` in the cache, named by its content (so it is never stale, and equal data
    keeps one file and its modification time, which caches of what a model computes key on)."""
    text = coco_json(data)
    path = Path(cache_dir).expanduser() / "coco_form" / f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, text)
    return path


def export_coco(splits: dict[str, tuple[Path, dict]], out: str | Path) -> Path:
    """{split: (images folder, validated COCO-form dict)} -> `out`, which must be new or empty (nothing
    is overwritten); images are copied."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"out={out} exists and is not an empty folder: name a new one (nothing is overwritten)")
    for split, (images, data) in splits.items():
        folder = out / EXPORT_FOLDERS[split]
        folder.mkdir(parents=True)
        for image in data["images"]:
            target = folder / image["file_name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(images) / image["file_name"], target)
        _write(folder / ROBOFLOW_FILE, coco_json(data))
    return out
