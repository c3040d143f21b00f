"""COCO box metrics with pycocotools, in original image pixels and the annotation file's category ids,
gathered from every process first so the numbers stay right under DDP; and the callback that evaluates
each validation epoch, logs `val/mAP` and friends, and keeps the best epoch's detections as a JSON file."""

import contextlib
import io
import json
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from pycocotools.cocoeval import COCOeval

from detr_ft.training.detections import postprocess, to_coco_results

# Our metric names (logged as val/<name>) -> index in COCOeval.stats.
METRICS = {"mAP": 0, "mAP50": 1, "mAP75": 2, "mAP_small": 3, "mAP_medium": 4, "mAP_large": 5, "AR100": 8}


def coco_metrics(coco_gt, results: list[dict], image_ids: list[int] | None = None) -> dict[str, float]:
    """Box AP/AR of `results` (COCO results format) against `coco_gt` (a pycocotools COCO).

    Scored on `image_ids`, by default every ground-truth image: images without results count as misses.
    COCOeval's -1 ("no such objects here", e.g. no small boxes) is reported as 0 so curves stay plottable.
    """
    if not results:
        return dict.fromkeys(METRICS, 0.0)
    unknown = sorted({r["image_id"] for r in results} - set(coco_gt.getImgIds()))
    if unknown:
        raise ValueError(f"detection results name image ids {unknown[:5]} that the annotation file does not have")
    # pycocotools prints progress and the 12-line table: keep the training log readable.
    with contextlib.redirect_stdout(io.StringIO()):
        detections = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, detections, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids if image_ids is not None else coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(max(0.0, evaluator.stats[index])) for name, index in METRICS.items()}


def drop_duplicate_images(results: list[dict]) -> list[dict]:
    """Results of all ranks, each tagged with its `_rank` -> the same without the tag, keeping each image's
    results from the first rank that has it.

    DistributedSampler pads the last round by giving some images to a second rank; without this, those
    images' detections would count twice (the same box once as a hit, once as a false positive).
    """
    owner: dict[int, int] = {}
    kept = []
    for result in results:
        rank = owner.setdefault(result["image_id"], result["_rank"])
        if rank == result["_rank"]:
            kept.append({key: value for key, value in result.items() if key != "_rank"})
    return kept


def gather_results(results: list[dict]) -> list[dict]:
    """Every rank's results, on every rank, each image once. Without torch.distributed (or with one
    process) the results come back unchanged."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return results
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, [{**r, "_rank": dist.get_rank()} for r in results])
    return drop_duplicate_images([r for part in gathered for r in part])


class DetectionEvaluator:
    """Collects COCO results batch by batch during validation; `compute(coco_gt)` gathers all ranks'
    and scores them. `results` (after compute: every rank's) is what the detections JSON holds."""

    def __init__(self, category_map):
        self.category_map = category_map
        self.results: list[dict] = []

    def reset(self) -> None:
        self.results = []

    def update(self, outputs: dict, targets: list[dict]) -> None:
        """outputs: the model's (pred_logits [B, Q, K+1], pred_boxes [B, Q, 4]); targets: with `orig_size`
        (h, w) and `image_id`, so the results are in original pixels and the file's ids."""
        predictions = postprocess(outputs, [t["orig_size"] for t in targets])
        image_ids = [int(t["image_id"]) for t in targets]
        self.results.extend(to_coco_results(predictions, image_ids, self.category_map))

    def compute(self, coco_gt, all_images: bool = False) -> dict[str, float]:
        """Metrics over the images this validation saw (all_images=True: over every image of `coco_gt`,
        unseen ones as misses). DETR returns num_queries results for each image it sees, so the seen
        images are those with results; scoring only them keeps `limit_val_batches` runs meaningful."""
        self.results = gather_results(self.results)
        seen = None if all_images else sorted({r["image_id"] for r in self.results})
        return coco_metrics(coco_gt, self.results, seen)


class CocoEvaluation(pl.Callback):
    """Scores every validation epoch against the datamodule's validation annotations and logs `val/<metric>`
    (mAP and mAP50 also in the progress bar). Writes the COCO results of the epoch with the best val/mAP so
    far to `detections_file` (file category ids, original pixels), for inspection and MLflow."""

    def __init__(self, detections_file: str | Path | None = None):
        self.detections_file = Path(detections_file) if detections_file else None
        self.evaluator: DetectionEvaluator | None = None
        self.best_map: float | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.coco_gt = trainer.datamodule.val_dataset.coco
        self.evaluator = DetectionEvaluator(trainer.datamodule.category_map)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.evaluator.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.evaluator.update(outputs, batch[2])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = self.evaluator.compute(self.coco_gt)  # gathers every rank's results first
        for name, value in metrics.items():
            shown = name in ("mAP", "mAP50")
            pl_module.log(f"val/{name}", value, on_epoch=True, sync_dist=False, rank_zero_only=False, prog_bar=shown)
        if self.best_map is None or metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            if self.detections_file is not None and trainer.is_global_zero:
                self.detections_file.parent.mkdir(parents=True, exist_ok=True)
                self.detections_file.write_text(json.dumps(self.evaluator.results))

    def state_dict(self) -> dict:
        return {"best_map": self.best_map}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_map = state_dict.get("best_map")
