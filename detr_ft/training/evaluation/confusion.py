"""The confusion matrix of detections against ground truth: which class each object was detected as, which
objects were missed, and which detections hit nothing.

Per image, detections at or above a score threshold are matched one-to-one to ground-truth objects at IoU
>= 0.5 regardless of class (so a cat found as a dog shows up as a confusion, not as a miss plus a false
detection), the highest-IoU pairs first. Crowd regions are left out, as COCO ignores them.
"""

import csv
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] and [M, 4] boxes (x, y, w, h) -> IoU [N, M] (0 where both boxes have no area)."""
    xyxy = [box_convert(torch.as_tensor(boxes, dtype=torch.float64), "xywh", "xyxy") for boxes in (a, b)]
    return box_iou(*xyxy).nan_to_num(0.0).numpy()


def _match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one (truth, detection) pairs with IoU >= threshold, highest IoU first."""
    truths, detections = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[truths, detections], kind="stable")
    used_truths, used_detections, pairs = set(), set(), []
    for t, d in zip(truths[order].tolist(), detections[order].tolist(), strict=True):
        if t not in used_truths and d not in used_detections:
            used_truths.add(t)
            used_detections.add(d)
            pairs.append((t, d))
    return pairs


def confusion_matrix(
    coco_gt,
    rows: np.ndarray,
    image_ids: list[int],
    category_ids: list[int],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """Counts [K+1, K+1]: row = true class, column = detected class, in `category_ids` order; the last row
    and column are "background": [K, j] detections of class j that match no object (false detections),
    [i, K] objects of class i that no detection matches (missed).

    rows: detections [N, 7] (image_id, category_id, x, y, w, h, score) as in `detection_rows`.
    """
    index = {category_id: i for i, category_id in enumerate(category_ids)}
    background = len(category_ids)
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    unknown = sorted({int(c) for c in rows[:, 1]} - set(index))
    if unknown:
        raise ValueError(f"detections name category ids {unknown[:5]} that the annotation file does not have")
    kept = rows[rows[:, 6] >= score_threshold]
    kept = kept[np.argsort(kept[:, 0], kind="stable")]
    found_ids, starts = np.unique(kept[:, 0], return_index=True)
    parts = np.split(kept, starts[1:]) if len(kept) else []
    by_image = dict(zip(found_ids.astype(np.int64).tolist(), parts, strict=True))
    for image_id in image_ids:
        truth = [a for a in coco_gt.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        truth_classes = [index[a["category_id"]] for a in truth]
        found = by_image.get(image_id, np.zeros((0, 7)))
        found_classes = [index[int(c)] for c in found[:, 1]]
        truth_boxes = np.array([a["bbox"] for a in truth], dtype=np.float64).reshape(-1, 4)
        pairs = _match(box_iou_xywh(truth_boxes, found[:, 2:6]), iou_threshold)
        for t, d in pairs:
            matrix[truth_classes[t], found_classes[d]] += 1
        matched_truths, matched_found = {t for t, _ in pairs}, {d for _, d in pairs}
        for t, c in enumerate(truth_classes):
            if t not in matched_truths:
                matrix[c, background] += 1
        for d, c in enumerate(found_classes):
            if d not in matched_found:
                matrix[background, c] += 1
    return matrix


def write_confusion_csv(path: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    """The matrix as CSV: a header of detected classes, then one row per true class, "background" last."""
    names = [*class_names, "background"]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["true \\ detected", *names])
        for name, counts in zip(names, matrix.tolist(), strict=True):
            writer.writerow([name, *counts])
