"""One COCOeval run, by faster-coco-eval (C++, same numbers) when installed, else by pycocotools.

Both give the 12 standard stats and the accumulated precision array, from which per-class AP and the
precision-recall curves come: nothing is evaluated twice.
"""

import contextlib
import copy
import importlib.util
import io
import logging
import weakref
from dataclasses import dataclass

import numpy as np

BACKENDS = ("auto", "faster_coco_eval", "pycocotools")


@dataclass
class CocoEvalOutput:
    """stats [12]: COCOeval.stats (AP, AP50, AP75, AP s/m/l, AR1, AR10, AR100, AR s/m/l), -1 where undefined.
    precision [T, R, K, A, M]: IoU thresholds x recall thresholds x categories (in `category_ids` order) x
    area ranges (all, small, medium, large) x max detections (1, 10, 100); -1 where a category has no
    ground truth."""

    stats: np.ndarray
    precision: np.ndarray
    category_ids: list[int]
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    backend: str  # faster_coco_eval | pycocotools


def faster_coco_eval_installed() -> bool:
    return importlib.util.find_spec("faster_coco_eval") is not None


def resolve_backend(backend: str) -> str:
    """`auto` -> faster_coco_eval when installed, else pycocotools; the others as named, if usable."""
    if backend not in BACKENDS:
        raise ValueError(f"COCO evaluation backend {backend!r} is unknown: use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "faster_coco_eval" if faster_coco_eval_installed() else "pycocotools"
    if backend == "faster_coco_eval" and not faster_coco_eval_installed():
        raise ValueError(
            "COCO evaluation backend 'faster_coco_eval' is not installed: `pip install faster-coco-eval`, "
            "or set callbacks.coco_evaluation.backend=auto (or pycocotools)"
        )
    return backend


# faster-coco-eval indexes the ground truth in its own COCO class: build it once per pycocotools index.
_faster_ground_truth: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _faster_coco(coco_gt):
    found = _faster_ground_truth.get(coco_gt)
    if found is None:
        from faster_coco_eval import COCO

        found = COCO(copy.deepcopy(coco_gt.dataset))
        _faster_ground_truth[coco_gt] = found
    return found


def _quiet_faster_coco_eval() -> None:
    """faster-coco-eval logs its progress and the 12-line table at INFO through `logging` (which Hydra's log
    shows), where pycocotools prints them: keep only its warnings."""
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("faster_coco_eval")]:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_cocoeval(coco_gt, results: list[dict], image_ids: list[int], backend: str = "auto") -> CocoEvalOutput:
    """Box evaluation of `results` (COCO results format, non-empty) against `coco_gt` (a pycocotools COCO)
    on `image_ids`. The result dicts are copied first: both libraries add keys to the dicts they load."""
    backend = resolve_backend(backend)
    results = [dict(r) for r in results]
    # Both libraries print progress and the 12-line table: keep the training log readable.
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "faster_coco_eval":
            from faster_coco_eval import COCOeval_faster

            _quiet_faster_coco_eval()
            ground_truth = _faster_coco(coco_gt)
            evaluator = COCOeval_faster(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        else:
            from pycocotools.cocoeval import COCOeval

            evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return CocoEvalOutput(
        stats=np.asarray(evaluator.stats[:12], dtype=np.float64),
        precision=np.asarray(evaluator.eval["precision"], dtype=np.float64),
        category_ids=[int(c) for c in evaluator.params.catIds],
        iou_thresholds=np.asarray(evaluator.params.iouThrs, dtype=np.float64),
        recall_thresholds=np.asarray(evaluator.params.recThrs, dtype=np.float64),
        backend=type(evaluator).__module__.split(".")[0],  # the library that really ran, as tests check
    )
