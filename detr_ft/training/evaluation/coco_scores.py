"""COCO box AP/AR of a set of detections, overall and per class, from one COCOeval run (coco_backends.py)."""

from dataclasses import dataclass

from detr_ft.training.evaluation.coco_backends import CocoEvalOutput, run_cocoeval
from detr_ft.training.evaluation.per_class import ClassAP, per_class_ap

# Our metric names (logged as val/<name>) -> index in COCOeval.stats.
METRICS = {"mAP": 0, "mAP50": 1, "mAP75": 2, "mAP_small": 3, "mAP_medium": 4, "mAP_large": 5, "AR100": 8}


@dataclass
class CocoScores:
    metrics: dict[str, float]  # METRICS' names -> value, COCOeval's -1 ("no such objects") as 0
    per_class: list[ClassAP]  # in the annotation file's category order
    evaluation: CocoEvalOutput | None  # the raw COCOeval output; None when there were no detections
    image_ids: list[int]  # the images scored


def evaluate_coco(
    coco_gt, results: list[dict], image_ids: list[int] | None = None, backend: str = "auto"
) -> CocoScores:
    """Box AP/AR of `results` (COCO results format) against `coco_gt` (a pycocotools COCO), overall and
    per class, from one COCOeval run. Scored on `image_ids`, by default every ground-truth image: images
    without results count as misses."""
    image_ids = sorted(image_ids if image_ids is not None else coco_gt.getImgIds())
    category_ids = sorted(coco_gt.getCatIds())
    if not results:
        per_class = per_class_ap(None, category_ids, coco_gt, image_ids)
        return CocoScores(dict.fromkeys(METRICS, 0.0), per_class, None, image_ids)
    unknown = sorted({r["image_id"] for r in results} - set(coco_gt.getImgIds()))
    if unknown:
        raise ValueError(f"detection results name image ids {unknown[:5]} that the annotation file does not have")
    output = run_cocoeval(coco_gt, results, image_ids, backend)
    metrics = {name: float(max(0.0, output.stats[index])) for name, index in METRICS.items()}
    per_class = per_class_ap(output.precision, output.category_ids, coco_gt, image_ids)
    return CocoScores(metrics, per_class, output, image_ids)
