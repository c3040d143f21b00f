"""COCO box metrics, in original image pixels and the annotation file's category ids, gathered from every
process first so the numbers stay right under DDP; and the callback that evaluates each validation epoch,
logs `val/mAP` and friends and per-class AP, and keeps the best epoch's detections, per-class table,
precision-recall curves and confusion matrix as files (and MLflow artifacts)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytorch_lightning as pl
import torch

from detr_ft import tracking
from detr_ft.model.postprocess import postprocess, to_coco_results
from detr_ft.training.evaluation.coco_backends import resolve_backend
from detr_ft.training.evaluation.coco_scores import CocoScores, evaluate_coco
from detr_ft.training.evaluation.confusion import confusion_matrix, write_confusion_csv
from detr_ft.training.evaluation.per_class import append_csv, metric_name, write_csv
from detr_ft.training.evaluation.rank_gathering import COLUMNS, gather_rows, pack_results, unpack_results
from detr_ft.training.loop.monitor import BestSoFar

# Up to this many classes, each class's AP and AP50 are also metrics (val/AP/<class>); beyond, only the table.
MAX_CLASSES_AS_METRICS = 20


class DetectionEvaluator:
    """Collects detections batch by batch during validation (as float64 rows, see `detection_rows`);
    `evaluate(coco_gt)` gathers all ranks' and scores them. `results` (after evaluate: every rank's) is
    what the detections JSON holds."""

    def __init__(self, category_map, backend: str = "auto", classification: str = "softmax"):
        self.category_map = category_map
        self.backend = resolve_backend(backend)
        self.classification = classification  # the model's class head form: how logits become scores
        self._batches: list[torch.Tensor] = []

    def reset(self) -> None:
        self._batches = []

    @property
    def rows(self) -> torch.Tensor:
        """[N, 7] (image_id, category_id, x, y, w, h, score), in the order they were collected."""
        return torch.cat(self._batches) if self._batches else torch.empty(0, len(COLUMNS), dtype=torch.float64)

    @property
    def results(self) -> list[dict]:
        return unpack_results(self.rows)

    def update(self, outputs: dict, targets: list[dict]) -> None:
        """outputs: the model's (pred_logits [B, Q, K+1] or [B, Q, K], pred_boxes [B, Q, 4]); targets: with
        `orig_size` (h, w) and `image_id`, so the results are in original pixels and the file's ids."""
        predictions = postprocess(outputs, [t["orig_size"] for t in targets], self.classification)
        image_ids = [int(t["image_id"]) for t in targets]
        self._batches.append(pack_results(to_coco_results(predictions, image_ids, self.category_map)))

    def evaluate(self, coco_gt, all_images: bool = False) -> CocoScores:
        """Scores over the images this validation saw (all_images=True: over every image of `coco_gt`,
        unseen ones as misses). DETR returns num_queries results for each image it sees, so the seen
        images are those with results; scoring only them keeps `limit_val_batches` runs meaningful."""
        rows = gather_rows(self.rows)
        self._batches = [rows]
        seen = None if all_images else sorted({int(i) for i in rows[:, 0].long().tolist()})
        return evaluate_coco(coco_gt, unpack_results(rows), seen, self.backend)


class CocoEvaluation(pl.Callback):
    """Scores every validation epoch against the datamodule's validation annotations and logs `val/<metric>`
    (mAP and mAP50 also in the progress bar) and, for up to MAX_CLASSES_AS_METRICS classes,
    `val/AP/<class>` and `val/AP50/<class>`; appends each epoch's per-class table to
    `<folder>/per_class_ap.csv`.

    When an epoch is the best so far by `monitor` (when it is a validation metric; val/mAP otherwise, e.g.
    for train_loss, decided later), writes its COCO results to `detections_file` (file category ids,
    original pixels) and, in `folder`, its per-class table, confusion matrix (CSV and picture, detections
    with score >= `score_threshold` matched at IoU 0.5) and precision-recall curves, all logged to MLflow
    under `evaluation/`. `backend`: auto | faster_coco_eval | pycocotools (same numbers; auto takes the
    faster one when installed).
    """

    def __init__(
        self,
        detections_file: str | Path | None = None,
        folder: str | Path | None = None,
        monitor: str = "val/mAP",
        backend: str = "auto",
        score_threshold: float = 0.5,
    ):
        try:
            self.backend = resolve_backend(backend)
        except ValueError as error:
            raise ValueError(f"callbacks.coco_evaluation.backend: {error}") from None
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"callbacks.coco_evaluation.score_threshold={score_threshold}: use a value in [0, 1]")
        self.detections_file = Path(detections_file) if detections_file else None
        self.folder = Path(folder) if folder else None
        self.monitor = monitor if monitor.startswith("val/") else "val/mAP"
        self.score_threshold = score_threshold
        self.evaluator: DetectionEvaluator | None = None
        self.latest: CocoScores | None = None  # this epoch's, until on_validation_end has judged it
        self.best = BestSoFar(self.monitor)
        self.best_per_class: list[dict] = []  # ClassAP rows as dicts (kept in checkpoints: plain types)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.coco_gt = trainer.datamodule.val_dataset.coco
        form = pl_module.model.classification
        self.evaluator = DetectionEvaluator(trainer.datamodule.category_map, self.backend, form)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.evaluator.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.evaluator.update(outputs, batch[2])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        scores = self.evaluator.evaluate(self.coco_gt)  # gathers every rank's results first
        self.latest = scores
        logged = {f"val/{name}": value for name, value in scores.metrics.items()}
        if len(scores.per_class) <= MAX_CLASSES_AS_METRICS:
            for row in scores.per_class:
                if row.AP is not None:
                    logged[f"val/AP/{metric_name(row.class_name)}"] = row.AP
                    logged[f"val/AP50/{metric_name(row.class_name)}"] = row.AP50
        for name, value in logged.items():
            shown = name in ("val/mAP", "val/mAP50")
            pl_module.log(name, value, on_epoch=True, sync_dist=False, rank_zero_only=False, prog_bar=shown)
        if self.folder is not None and trainer.is_global_zero:
            table = self.folder / "per_class_ap.csv"
            append_csv(table, trainer.current_epoch, scores.per_class)
            tracking.log_artifact(trainer.loggers, table, "evaluation")

    def on_validation_end(self, trainer, pl_module) -> None:
        scores, self.latest = self.latest, None
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or scores is None or value is None:
            return
        if not self.best.offer(float(value), trainer.current_epoch):
            return
        self.best_per_class = [asdict(row) for row in scores.per_class]
        if trainer.is_global_zero:
            self._write_best(trainer, scores)

    def _write_best(self, trainer: pl.Trainer, scores: CocoScores) -> None:
        # matplotlib takes a second or two to import: only runs that draw pay for it.
        from detr_ft.training.evaluation.best_epoch_pictures import draw_confusion_matrix, draw_pr_curves

        if self.detections_file is not None:
            self.detections_file.parent.mkdir(parents=True, exist_ok=True)
            self.detections_file.write_text(json.dumps(self.evaluator.results))
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        category_ids = sorted(self.coco_gt.getCatIds())
        names = [self.coco_gt.cats[c]["name"] for c in category_ids]
        title = f"(epoch {trainer.current_epoch}, best {self.monitor})"
        files = [self.folder / "per_class_ap_best.csv"]
        write_csv(files[0], trainer.current_epoch, scores.per_class)

        matrix = confusion_matrix(
            self.coco_gt, self.evaluator.rows.numpy(), scores.image_ids, category_ids, 0.5, self.score_threshold
        )
        files.append(self.folder / "confusion_matrix_best.csv")
        write_confusion_csv(files[-1], matrix, names)
        files.append(self.folder / "confusion_matrix_best.png")
        draw_confusion_matrix(matrix, names, files[-1], f"{title}, score >= {self.score_threshold:g}, IoU >= 0.5")

        if scores.evaluation is not None:
            files.append(self.folder / "pr_curve_best.png")
            precision = scores.evaluation.precision[0, :, :, 0, -1]  # IoU 0.5, all areas, 100 detections
            draw_pr_curves(scores.evaluation.recall_thresholds, precision, names, files[-1], title)
        for path in files:
            tracking.log_artifact(trainer.loggers, path, "evaluation")

    @property
    def best_epoch(self) -> int | None:
        return self.best.epoch

    def state_dict(self) -> dict:
        return {**self.best.state_dict(), "best_per_class": self.best_per_class}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best.load_state_dict(state_dict)
        self.best_per_class = list(state_dict.get("best_per_class", []))
