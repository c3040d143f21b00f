"""The LightningModule: the training and validation steps, the optimizer's parameter groups and their
learning rates, and metric logging; nothing else (COCO evaluation, pictures and checkpoint contents are
callbacks).

The optimizer has a head group and one group per trainable backbone stage from the first step, empty of
gradients and at rate 0 while its stage is frozen, so resume, learning-rate schedules and checkpoints of a
progressive run stay consistent (Lightning #12141). Each group carries its own schedule state (`base_lr`,
`unfreeze_step`), which the optimizer's state dict saves and a resume restores.
"""

import pytorch_lightning as pl
import torch

from detr_ft.training.loop.lr_schedule import LearningRateSchedule

HEAD_GROUP = "head"


class DetrModule(pl.LightningModule):
    """Args: the DETR and its SetCriterion (built parts), the head's and the backbone's learning rates,
    AdamW's weight decay, and the learning-rate schedule."""

    def __init__(
        self,
        model: torch.nn.Module,
        criterion: torch.nn.Module,
        learning_rate: float,
        backbone_learning_rate: float,
        weight_decay: float,
        schedule: LearningRateSchedule,
    ):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.learning_rate = learning_rate
        self.backbone_learning_rate = backbone_learning_rate
        self.weight_decay = weight_decay
        self.schedule = schedule

    def forward(self, images, mask=None):
        return self.model(images, mask)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, mask, targets = batch
        outputs = self.model(images, mask)
        losses, matches = self.criterion.losses_and_matches(outputs, targets)
        size = len(targets)
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        # The fine-tuning guide's checkpoint names use `train_loss` (best_epoch=6-...-train_loss=2.9145.ckpt).
        self.log("train_loss", losses["loss"], on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        for term in ("loss_ce", "loss_bbox", "loss_giou"):
            if term in losses:
                self.log(f"train/{term}", losses[term], on_step=True, on_epoch=False, batch_size=size)
        # matches and logits: for matching health (training/reports/matching_health.py), nothing is matched twice
        return {"loss": losses["loss"], "pred_logits": outputs["pred_logits"].detach(), "matches": matches}

    def on_train_epoch_start(self):
        stages = list(self.model.backbone.unfrozen_stages)
        self.log("backbone/trainable_stages", float(len(stages)), on_step=False, on_epoch=True)

    def on_train_batch_start(self, batch, batch_idx):
        self.apply_learning_rates()
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            for group in self.optimizers().param_groups:
                self.log(f"lr/{group['name']}", group["lr"], on_step=True, on_epoch=False)

    def mark_unfrozen(self, stages: list[str], step: int) -> None:
        """Record in their optimizer groups when backbone stages started training mid-run (their learning
        rate warms up from there)."""
        for group in self.optimizers().param_groups:
            if group["name"] in stages and group.get("unfreeze_step") is None:
                group["unfreeze_step"] = step

    def apply_learning_rates(self) -> None:
        """Set every group's rate for the current step: base x drops x warm-ups; 0 while a stage is frozen."""
        if self._trainer is None:
            return
        trainable = set(self.model.backbone.unfrozen_stages)
        # The run's optimizer steps (train.epochs' worth), for a cosine schedule: the same on resume.
        total = self.trainer.estimated_stepping_batches if self.schedule.needs_total_steps else None
        for group in self.optimizers().param_groups:
            if group["name"] != HEAD_GROUP and group["name"] not in trainable:
                group["lr"] = 0.0
                continue
            factor = self.schedule.factor(self.global_step, self.current_epoch, group.get("unfreeze_step"), total)
            group["lr"] = group["base_lr"] * factor

    def configure_optimizers(self):
        groups = [{"name": HEAD_GROUP, "params": list(self.model.head_parameters()), "base_lr": self.learning_rate}]
        for stage in self.model.backbone.trainable_stages:
            params = list(self.model.backbone.stage_parameters(stage))
            groups.append({"name": stage, "params": params, "base_lr": self.backbone_learning_rate})
        for group in groups:
            group["lr"] = group["base_lr"]
            group["unfreeze_step"] = None
        return torch.optim.AdamW(groups, lr=self.learning_rate, weight_decay=self.weight_decay, **self._adamw_kernel())

    def _adamw_kernel(self) -> dict:
        """One fused kernel for all parameters instead of a Python loop over them (CPU and CUDA have it). Lightning
        refuses gradient clipping with a fused optimizer under mixed precision, so there: the multi-tensor one."""
        mixed = self._trainer is not None and str(self.trainer.precision).endswith("-mixed")
        devices = {p.device.type for p in self.model.parameters()}
        if mixed or not devices <= {"cpu", "cuda"}:
            return {"foreach": True} if devices <= {"cpu", "cuda"} else {}
        return {"fused": True}

    # ---- validation -----------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        """-> the model's outputs (for the evaluation and picture callbacks)."""
        images, mask, targets = batch
        outputs = self.model(images, mask)
        losses = self.criterion(outputs, targets)
        self.log("val/loss", losses["loss"], on_epoch=True, batch_size=len(targets), sync_dist=True)
        return outputs
