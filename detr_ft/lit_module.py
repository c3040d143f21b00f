"""The LightningModule: one training step (match, loss), validation with COCO metrics, and the
optimizer with a head group and one group per trainable backbone stage.

Every group exists from the first step, empty of gradients while its stage is frozen, so resume,
learning-rate schedules and checkpoints of a progressive run stay consistent (Lightning #12141).
"""

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

from detr_ft.evaluation import DetectionEvaluator
from detr_ft.lr_schedule import LearningRateSchedule
from detr_ft.pictures import prediction_grid

HEAD_GROUP = "head"


class DetrLitModule(pl.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        criterion: torch.nn.Module,
        category_map,
        learning_rate: float,
        backbone_learning_rate: float,
        weight_decay: float,
        schedule: LearningRateSchedule,
        config_yaml: str = "",
        run_dir: str | None = None,
        val_coco=None,
    ):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.category_map = category_map
        self.learning_rate = learning_rate
        self.backbone_learning_rate = backbone_learning_rate
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.config_yaml = config_yaml
        self.run_dir = Path(run_dir) if run_dir else None
        self.val_coco = val_coco  # pycocotools COCO of the validation annotations
        self.evaluator = DetectionEvaluator(category_map)
        self.unfreeze_steps: dict[str, int] = {}  # stage -> global step it started training mid-run
        self.best_val_map: float | None = None
        self.best_val_epoch: int | None = None
        self.best_val_map50: float | None = None  # mAP50 of the best-mAP epoch
        self.last_val_metrics: dict[str, float] = {}
        self.prediction_picture = None  # PIL image of the first validation batch, made each epoch

    def forward(self, images, mask=None):
        return self.model(images, mask)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, mask, targets = batch
        losses = self.criterion(self.model(images, mask), targets)
        size = len(targets)
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        # The fine-tuning guide's checkpoint names use `train_loss` (best_epoch=6-...-train_loss=2.9145.ckpt).
        self.log("train_loss", losses["loss"], on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        for term in ("loss_ce", "loss_bbox", "loss_giou"):
            if term in losses:
                self.log(f"train/{term}", losses[term], on_step=True, on_epoch=False, batch_size=size)
        return losses["loss"]

    def on_train_epoch_start(self):
        stages = list(self.model.backbone.unfrozen_stages)
        self.log("backbone/trainable_stages", float(len(stages)), on_step=False, on_epoch=True)

    def on_train_batch_start(self, batch, batch_idx):
        self.apply_learning_rates()
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            for group in self.optimizers().param_groups:
                self.log(f"lr/{group['name']}", group["lr"], on_step=True, on_epoch=False)

    def mark_unfrozen(self, stages: list[str], step: int) -> None:
        """Record when backbone stages started training mid-run (their learning rate warms up from there)."""
        for stage in stages:
            self.unfreeze_steps.setdefault(stage, step)

    def apply_learning_rates(self) -> None:
        """Set every group's rate for the current step: base x drops x warm-ups; 0 while a stage is frozen."""
        if self._trainer is None:
            return
        trainable = set(self.model.backbone.unfrozen_stages)
        for group in self.optimizers().param_groups:
            stage = group["name"]
            if stage != HEAD_GROUP and stage not in trainable:
                group["lr"] = 0.0
                continue
            factor = self.schedule.factor(self.global_step, self.current_epoch, self.unfreeze_steps.get(stage))
            group["lr"] = group["base_lr"] * factor

    def configure_optimizers(self):
        groups = [{"name": HEAD_GROUP, "params": list(self.model.head_parameters()), "base_lr": self.learning_rate}]
        for stage in self.model.backbone.trainable_stages:
            params = list(self.model.backbone.stage_parameters(stage))
            groups.append({"name": stage, "params": params, "base_lr": self.backbone_learning_rate})
        for group in groups:
            group["lr"] = group["base_lr"]
        return torch.optim.AdamW(groups, lr=self.learning_rate, weight_decay=self.weight_decay)

    # ---- validation -----------------------------------------------------------------------------
    def on_validation_epoch_start(self):
        self.evaluator.reset()

    def validation_step(self, batch, batch_idx):
        images, mask, targets = batch
        outputs = self.model(images, mask)
        losses = self.criterion(outputs, targets)
        self.log("val/loss", losses["loss"], on_epoch=True, batch_size=len(targets), sync_dist=True)
        self.evaluator.update(outputs, targets)
        if batch_idx == 0 and self.trainer.is_global_zero:
            predictions = self.evaluator.postprocess(outputs, [t["size"] for t in targets])
            self.prediction_picture = prediction_grid(images, predictions, targets, self.category_map.names)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or self.val_coco is None:
            return
        metrics = self.evaluator.compute(self.val_coco)  # gathers every rank's results first
        for name, value in metrics.items():
            shown = name in ("mAP", "mAP50")  # in the progress bar beside the loss
            self.log(f"val/{name}", value, on_epoch=True, sync_dist=False, rank_zero_only=False, prog_bar=shown)
        self.last_val_metrics = metrics
        if self.best_val_map is None or metrics["mAP"] > self.best_val_map:
            self.best_val_map, self.best_val_epoch = metrics["mAP"], self.current_epoch
            self.best_val_map50 = metrics["mAP50"]
            if self.run_dir is not None and self.trainer.is_global_zero:
                path = self.run_dir / "val_detections_best.json"
                path.write_text(json.dumps(self.evaluator.results))

    # ---- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        # Plain types only, so the file loads with torch.load(weights_only=True).
        checkpoint["detr_ft"] = {
            "config": self.config_yaml,
            "category_map": self.category_map.to_dict(),
            "unfreeze_steps": dict(self.unfreeze_steps),
            "best_val_map": self.best_val_map,
            "best_val_epoch": self.best_val_epoch,
            "best_val_map50": self.best_val_map50,
        }

    def on_load_checkpoint(self, checkpoint):
        saved = checkpoint.get("detr_ft", {})
        self.unfreeze_steps = dict(saved.get("unfreeze_steps", {}))
        self.best_val_map = saved.get("best_val_map")
        self.best_val_epoch = saved.get("best_val_epoch")
        self.best_val_map50 = saved.get("best_val_map50")
