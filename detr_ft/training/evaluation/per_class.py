"""Per-class AP and AP50 from COCOeval's accumulated precision (the same run as val/mAP), their CSV table,
and the few lines the run summary shows (every class when there are few, the best and worst when many)."""

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CSV_FIELDS = ("epoch", "category_id", "class_name", "AP", "AP50", "objects")


@dataclass
class ClassAP:
    category_id: int
    class_name: str
    AP: float | None  # None: no ground-truth object of this class in the evaluated images
    AP50: float | None
    objects: int  # ground-truth objects (not crowd) in the evaluated images


def _mean_of_defined(values: np.ndarray) -> float | None:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else None


def per_class_ap(precision: np.ndarray | None, category_ids: list[int], coco_gt, image_ids: list[int]) -> list[ClassAP]:
    """precision: COCOeval's [T, R, K, A, M] (None when there were no detections at all: every class with
    objects then has AP 0). Area range "all" and 100 detections, as for val/mAP, whose value is the mean of
    these APs over the classes that have objects; AP50 is the IoU-0.5 slice."""
    objects = dict.fromkeys(category_ids, 0)
    for image_id in image_ids:
        for annotation in coco_gt.imgToAnns.get(image_id, []):
            if not annotation.get("iscrowd", 0) and annotation["category_id"] in objects:
                objects[annotation["category_id"]] += 1
    table = []
    for k, category_id in enumerate(category_ids):
        name = coco_gt.cats[category_id]["name"]
        if precision is None:
            ap = ap50 = 0.0 if objects[category_id] else None
        else:
            ap = _mean_of_defined(precision[:, :, k, 0, -1])
            ap50 = _mean_of_defined(precision[0, :, k, 0, -1])
        table.append(ClassAP(category_id, name, ap, ap50, objects[category_id]))
    return table


def metric_name(class_name: str) -> str:
    """A class name as MLflow accepts it inside a metric name (no '/', which would nest it further)."""
    return re.sub(r"[^\w\-. :]", "_", class_name)


def append_csv(path: Path, epoch: int, table: list[ClassAP]) -> None:
    """Add one epoch's rows to `path` (created with its header when new; a resumed run goes on appending)."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        for row in table:
            writer.writerow({"epoch": epoch, **{k: ("" if v is None else v) for k, v in asdict(row).items()}})


def write_csv(path: Path, epoch: int, table: list[ClassAP]) -> None:
    path.unlink(missing_ok=True)
    append_csv(path, epoch, table)


def summary_lines(table: list[dict], shown: int = 5) -> list[str]:
    """Rows of a ClassAP table (as dicts) -> aligned lines, best AP first: every class with objects when
    there are at most 2 * shown, else the `shown` best and the `shown` worst."""
    scored = sorted((r for r in table if r["AP"] is not None), key=lambda r: (-r["AP"], r["class_name"]))
    if not scored:
        return []
    width = max(len(r["class_name"]) for r in scored)

    def line(r: dict) -> str:
        return f"  {r['class_name'].ljust(width)}  AP {r['AP']:.4f}  AP50 {r['AP50']:.4f}  ({r['objects']} objects)"

    if len(scored) <= 2 * shown:
        return [line(r) for r in scored]
    hidden = len(scored) - 2 * shown
    return [*map(line, scored[:shown]), f"  ... {hidden} more classes ...", *map(line, scored[-shown:])]
