"""COCO files (JSON holding the lists `images`, `annotations`, `categories`) and the two folder layouts
`data.root` is recognised by: Roboflow's COCO export (train/, valid/, test/, each holding its images and an
`_annotations.coco.json`), else COCO 2017's (train2017/, val2017/, annotations/instances_{train,val}2017.json)."""

import json
from functools import partial
from pathlib import Path

from detr_ft.data.formats import DatasetError, Split

COCO_LISTS = ("images", "annotations", "categories")
COCO_2017 = {
    "train": ("train2017", "annotations/instances_train2017.json"),
    "val": ("val2017", "annotations/instances_val2017.json"),
}
ROBOFLOW_FILE = "_annotations.coco.json"
ROBOFLOW_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}
NO_LOCATION = (
    "no dataset location: set data.root (a folder in the COCO 2017 layout: train2017/, val2017/, "
    "annotations/instances_{train,val}2017.json, or Roboflow's: train/, valid/, each with _annotations.coco.json) "
    "or all four of data.train_images, data.train_annotations, data.val_images and data.val_annotations"
)


def load_annotation_file(path: str | Path) -> dict:
    """The file's JSON if it holds COCO's three lists; FileNotFoundError or ValueError naming the file if not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ValueError(f"annotation file {path} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"annotation file {path} is not UTF-8 text ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"annotation file {path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"annotation file {path} nests lists deeper than a JSON reader allows") from None
    missing = [key for key in COCO_LISTS if not isinstance(data, dict) or not isinstance(data.get(key), list)]
    if missing:
        raise ValueError(
            f"annotation file {path} has no {missing} list(s) (COCO format needs images, annotations, categories)"
        )
    return data


def read_roboflow(path: Path, report) -> dict:
    """Roboflow's export lists the dataset itself as a category (id 0), the supercategory of every class, with
    no boxes: it is left out (with a note), or the model would learn a class that never occurs."""
    data = load_annotation_file(path)
    categories = [c for c in data["categories"] if isinstance(c, dict)]
    parents = {c.get("supercategory") for c in categories if c.get("supercategory") != c.get("name")}
    used = {a.get("category_id") for a in data["annotations"] if isinstance(a, dict)}
    grouping = [c for c in categories if c.get("name") in parents and c.get("id") not in used]
    if grouping:
        data["categories"] = [c for c in data["categories"] if c not in grouping]
        names = ", ".join(f"{c.get('id')} {c.get('name')!r}" for c in grouping)
        report.notes.append(f"left out category {names}: the supercategory of the others, with no boxes")
    return data


def _layout(root: Path) -> dict[str, tuple[Path, Path, bool]]:
    """{split: (images folder, annotation file, is Roboflow's)} of what `root` holds."""
    found = {}
    for split, names in ROBOFLOW_FOLDERS.items():
        folder = next((root / name for name in names if (root / name / ROBOFLOW_FILE).is_file()), root / names[0])
        found[split] = (folder, folder / ROBOFLOW_FILE, True)
    if found["train"][1].is_file():
        return found
    return {split: (root / images, root / annotations, False) for split, (images, annotations) in COCO_2017.items()}


def _given(path) -> Path | None:
    """A path the config sets; `None/...` is what an old-style `${.root}/...` gives without data.root."""
    return None if path is None or str(path).startswith("None/") or str(path) == "None" else Path(path)


def coco_splits(root: str | None = None, **paths: str | None) -> dict[str, Split]:
    """The explicit data.{train,val,test}_{images,annotations} paths, the rest from `root`'s layout; a test
    split only where both of its paths are known (and, from a layout, its annotation file exists)."""
    layout = _layout(Path(root).expanduser()) if _given(root) else {}
    splits = {}
    for split in ("train", "val", "test"):
        images, annotations = _given(paths.get(f"{split}_images")), _given(paths.get(f"{split}_annotations"))
        default_images, default_annotations, roboflow = layout.get(split, (None, None, False))
        images, annotations = images or default_images, annotations or default_annotations
        absent = annotations == default_annotations and not (annotations and annotations.is_file())
        if split == "test" and (images is None or annotations is None or absent):
            continue  # no test split given, and none in the layout
        if images is None or annotations is None:
            raise DatasetError(NO_LOCATION)
        read = partial(read_roboflow, annotations) if roboflow and annotations == default_annotations else None
        splits[split] = Split(images, annotations, read)
    return splits
