"""faster-coco-eval and pycocotools give the same numbers (all 12 stats, the precision array, per-class AP)
on a few thousand synthetic detections; the backend setting is checked."""

import numpy as np
import pytest

from benchmarks.bench_coco_eval import synthetic_evaluation_case
from detr_ft.training.evaluation import coco_backends
from detr_ft.training.evaluation.coco_backends import resolve_backend, run_cocoeval
from detr_ft.training.evaluation.coco_evaluation import CocoEvaluation
from detr_ft.training.evaluation.coco_scores import evaluate_coco


def test_both_backends_give_the_same_numbers():
    coco_gt, results = synthetic_evaluation_case(images=60, detections=50, classes=5, seed=3)
    assert len(results) == 3000
    image_ids = sorted(coco_gt.getImgIds())
    slow = run_cocoeval(coco_gt, results, image_ids, "pycocotools")
    fast = run_cocoeval(coco_gt, results, image_ids, "faster_coco_eval")
    assert (slow.backend, fast.backend) == ("pycocotools", "faster_coco_eval")
    assert slow.stats.shape == fast.stats.shape == (12,)
    assert 0.05 < slow.stats[0] < 0.95  # a case with hits and misses, not a trivial 0 or 1
    np.testing.assert_allclose(fast.stats, slow.stats, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.precision, slow.precision, rtol=0, atol=1e-6)

    seen = image_ids[:40]  # a subset, as a limit_val_batches run scores
    slow_scores = evaluate_coco(coco_gt, results, seen, "pycocotools")
    fast_scores = evaluate_coco(coco_gt, results, seen, "faster_coco_eval")
    assert slow_scores.metrics == pytest.approx(fast_scores.metrics, abs=1e-6)
    assert len(slow_scores.per_class) == len(fast_scores.per_class) == 5
    for slow_row, fast_row in zip(slow_scores.per_class, fast_scores.per_class, strict=True):
        assert (slow_row.category_id, slow_row.objects) == (fast_row.category_id, fast_row.objects)
        assert fast_row.AP == pytest.approx(slow_row.AP, abs=1e-6)
        assert fast_row.AP50 == pytest.approx(slow_row.AP50, abs=1e-6)


def test_the_results_given_are_not_modified():
    coco_gt, results = synthetic_evaluation_case(images=3, detections=5, classes=2)
    before = [dict(r) for r in results]
    for backend in ("pycocotools", "faster_coco_eval"):
        run_cocoeval(coco_gt, results, sorted(coco_gt.getImgIds()), backend)
    assert results == before  # both libraries add area, id, ... to the dicts they load: we pass copies


def test_auto_takes_faster_coco_eval_when_installed_and_pycocotools_otherwise(monkeypatch):
    assert resolve_backend("auto") == "faster_coco_eval"
    monkeypatch.setattr(coco_backends, "faster_coco_eval_installed", lambda: False)
    assert resolve_backend("auto") == "pycocotools"
    with pytest.raises(ValueError, match="pip install faster-coco-eval"):
        resolve_backend("faster_coco_eval")


def test_an_unknown_backend_is_refused_naming_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"callbacks.coco_evaluation.backend.*'cocoapi'.*auto, faster_coco_eval"):
        CocoEvaluation(backend="cocoapi")
