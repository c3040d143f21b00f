"""COCO evaluation speed: faster-coco-eval against pycocotools on the same detections (5,000 images x 100
detections, 20 classes), the numbers checked equal; and what the best epoch's extras cost (confusion
matrix, pictures).

    python -m benchmarks coco_eval
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from detr_ft.data.coco import coco_from_dict
from detr_ft.training.evaluation.best_epoch_pictures import draw_confusion_matrix, draw_pr_curves
from detr_ft.training.evaluation.coco_backends import faster_coco_eval_installed, run_cocoeval
from detr_ft.training.evaluation.confusion import confusion_matrix
from detr_ft.training.evaluation.rank_gathering import pack_results

IMAGES, DETECTIONS, CLASSES = 5000, 100, 20


def synthetic_evaluation_case(images: int, detections: int, classes: int, seed: int = 0) -> tuple:
    """(pycocotools COCO ground truth, COCO results): 1-9 objects of every size per 640x480 image; per image
    `detections` results: each object found with jitter (sometimes under the wrong class), the rest random
    boxes, scores random, all rounded as detr_ft rounds them."""
    rng = np.random.default_rng(seed)
    records = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(images)]
    annotations, results = [], []
    for record in records:
        own = []
        for _ in range(rng.integers(1, 10)):
            w, h = rng.uniform(8, 300, 2)
            box = [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]
            category = int(rng.integers(1, classes + 1))
            own.append((box, category))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record["id"],
                    "category_id": category,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }  # fmt: skip
            )
        for d in range(detections):
            if d < len(own):
                (x, y, w, h), category = own[d]
                x, y = x + rng.normal(0, 0.05 * w), y + rng.normal(0, 0.05 * h)
                category = category if rng.random() < 0.8 else int(rng.integers(1, classes + 1))
            else:
                w, h = rng.uniform(5, 300, 2)
                x, y, category = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), int(rng.integers(1, classes + 1))
            box = [round(float(v), 2) for v in (x, y, w, h)]
            results.append(
                {"image_id": record["id"], "category_id": category, "bbox": box, "score": round(float(rng.random()), 5)}
            )
    categories = [{"id": k, "name": f"class{k}"} for k in range(1, classes + 1)]
    return coco_from_dict({"images": records, "annotations": annotations, "categories": categories}), results


def _timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main() -> None:
    if not faster_coco_eval_installed():
        print("faster-coco-eval is not installed (pip install faster-coco-eval): only pycocotools timed")
    coco_gt, results = synthetic_evaluation_case(IMAGES, DETECTIONS, CLASSES)
    image_ids = sorted(coco_gt.getImgIds())
    print(f"{IMAGES} images x {DETECTIONS} detections ({len(results):,}), {CLASSES} classes, one process")
    print(f"{'backend':18} {'seconds':>8}  (loadRes + evaluate + accumulate + summarize)")
    timings, outputs = {}, {}
    backends = ["pycocotools", *(["faster_coco_eval"] if faster_coco_eval_installed() else [])]
    for backend in backends:
        run_cocoeval(coco_gt, results[: DETECTIONS * 50], image_ids[:50], backend)  # warm-up (imports, indexing)
        outputs[backend], timings[backend] = _timed(run_cocoeval, coco_gt, results, image_ids, backend)
        print(f"{backend:18} {timings[backend]:8.2f}")
    if len(backends) == 2:
        stats_gap = np.abs(outputs["pycocotools"].stats - outputs["faster_coco_eval"].stats).max()
        precision_gap = np.abs(outputs["pycocotools"].precision - outputs["faster_coco_eval"].precision).max()
        print(f"speed-up: {timings['pycocotools'] / timings['faster_coco_eval']:.1f}x; largest difference: "
              f"12 stats {stats_gap:.1e}, precision array {precision_gap:.1e}")  # fmt: skip

    print("\nthe best epoch's extras (written only when a new best arrives)")
    rows = pack_results(results).numpy()
    category_ids = sorted(coco_gt.getCatIds())
    matrix, seconds = _timed(confusion_matrix, coco_gt, rows, image_ids, category_ids)
    print(f"{'confusion matrix':18} {seconds:8.2f}")
    names = [coco_gt.cats[c]["name"] for c in category_ids]
    with tempfile.TemporaryDirectory() as folder:
        _, seconds = _timed(draw_confusion_matrix, matrix, names, Path(folder) / "confusion.png")
        print(f"{'its picture':18} {seconds:8.2f}")
        evaluation = outputs[backends[-1]]
        precision = evaluation.precision[0, :, :, 0, -1]
        _, seconds = _timed(draw_pr_curves, evaluation.recall_thresholds, precision, names, Path(folder) / "pr.png")
        print(f"{'PR curves picture':18} {seconds:8.2f}")


if __name__ == "__main__":
    main()
