"""When each backbone stage trains: the fine-tuning guide's keys turned into a per-stage plan, and the
Lightning callback that applies that plan at every epoch start.

Semantics (the guide's): `freeze_backbone` is the state at the start; `unfreeze_backbone_at_epoch`
N >= 0 unfreezes at the start of epoch N (epochs count from 0); -1 never. `unfreeze_schedule`
({stage: epoch}) unfreezes stage by stage instead, last stage first by convention.

The keys live once, under `train.` (the guide's names); a `finetune_strategy` preset (conf/finetune_strategy)
is a named set of their values, and `train.*` overrides compose on top of it.
"""

import copy
import logging

import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger

from detr_ft import tracking
from detr_ft.training.loop.finetune_auto import AUTO, auto_settings

log = logging.getLogger(__name__)


class UnfreezePlan:
    """The epoch at which each trainable backbone stage starts training (absent: never)."""

    def __init__(
        self,
        stages: list[str],
        freeze_backbone: bool,
        unfreeze_backbone_at_epoch: int = -1,
        unfreeze_schedule: dict[str, int] | None = None,
    ):
        self.stages = list(stages)
        self.freeze_backbone = freeze_backbone
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        if unfreeze_schedule is not None and not isinstance(unfreeze_schedule, dict):
            raise ValueError(f"train.unfreeze_schedule must be a mapping {{stage: epoch}}, got {unfreeze_schedule!r}")
        self.unfreeze_schedule = dict(unfreeze_schedule or {})
        not_epochs = {s: e for s, e in self.unfreeze_schedule.items() if not isinstance(e, int) or isinstance(e, bool)}
        if not_epochs:
            raise ValueError(f"train.unfreeze_schedule epochs must be integers, got {not_epochs}")
        unknown = sorted(set(self.unfreeze_schedule) - set(self.stages))
        if unknown:
            raise ValueError(
                f"train.unfreeze_schedule names stage(s) {unknown} that this model's backbone cannot train; "
                f"its trainable stages are {self.stages} (model.backbone.trainable_stages)"
            )
        bad = {stage: epoch for stage, epoch in self.unfreeze_schedule.items() if epoch < 0}
        if bad:
            raise ValueError(f"train.unfreeze_schedule epochs must be >= 0, got {bad}")
        self.start_epochs = self._start_epochs()

    def _start_epochs(self) -> dict[str, int]:
        if not self.freeze_backbone:
            return {stage: 0 for stage in self.stages}
        if self.unfreeze_schedule:
            return dict(self.unfreeze_schedule)
        if self.unfreeze_backbone_at_epoch >= 0:
            return {stage: self.unfreeze_backbone_at_epoch for stage in self.stages}
        return {}

    def trainable_at(self, epoch: int) -> list[str]:
        """Stages that train during `epoch`, in backbone order."""
        return [s for s in self.stages if s in self.start_epochs and epoch >= self.start_epochs[s]]

    def warnings(self, epochs: int) -> list[str]:
        """Settings that are legal but almost certainly not what the user meant."""
        found = []
        if not self.freeze_backbone and (self.unfreeze_backbone_at_epoch >= 0 or self.unfreeze_schedule):
            found.append(
                "train.freeze_backbone is false, so the backbone trains from epoch 0 and "
                f"unfreeze_backbone_at_epoch={self.unfreeze_backbone_at_epoch} / unfreeze_schedule has no effect"
            )
        late = {s: e for s, e in self.start_epochs.items() if e >= epochs}
        if late:
            found.append(
                f"unfreeze epoch(s) {late} are at or past train.epochs={epochs} (epochs count from 0), "
                "so those stages never train"
            )
        return found

    def within(self, epochs: int) -> "UnfreezePlan":
        """The plan as a run of `epochs` epochs carries it out: a stage set to start at or past the last epoch
        never trains (`finetune_strategy=frozen train.unfreeze_backbone_at_epoch=99` stays frozen)."""
        ran = copy.copy(self)
        ran.start_epochs = {stage: epoch for stage, epoch in self.start_epochs.items() if epoch < epochs}
        return ran

    def describe(self) -> str:
        """One line for logs and the MLflow tag `schedule`."""
        if not self.start_epochs:
            return "backbone frozen throughout"
        if all(epoch == 0 for epoch in self.start_epochs.values()) and len(self.start_epochs) == len(self.stages):
            return "backbone trained from epoch 0"
        parts = [f"{stage} from epoch {epoch}" for stage, epoch in sorted(self.start_epochs.items())]
        return "backbone frozen at start; " + ", ".join(parts)

    @property
    def kind(self) -> str:
        """What the plan does, in the presets' words: frozen (never trains the backbone), full (every stage
        from epoch 0) or progressive (frozen at start, stages join later)."""
        if not self.start_epochs:
            return "frozen"
        if len(self.start_epochs) == len(self.stages) and all(e == 0 for e in self.start_epochs.values()):
            return "full"
        return "progressive"


def preset_mismatch(preset: str, plan: UnfreezePlan) -> str | None:
    """A warning when `train.*` overrides make the chosen finetune_strategy preset something else
    (`finetune_strategy=frozen train.unfreeze_backbone_at_epoch=2` trains like progressive): its runs would
    be tagged with a name that is not what ran. Changing the epoch of progressive changes nothing of the kind."""
    if preset not in ("frozen", "full", "progressive") or plan.kind == preset:
        return None
    return (
        f"finetune_strategy={preset}, but the train.* values make it {plan.kind} ({plan.describe()}); "
        f"the MLflow tag `strategy` records {plan.kind}, `strategy_preset` {preset}"
    )


class BackboneUnfreezing(pl.Callback):
    """At each epoch start, asks the model to freeze/unfreeze its backbone stages as the plan says.

    Built from the guide's keys (the finetune_strategy group writes them under `train.`), the preset's name and
    the run's epochs; the plan is made once when training starts, from the model's trainable stages, then
    logged (with its warnings) and tagged on the MLflow run (`strategy`, `schedule`). The model does the
    freezing (detr_ft.model); this only decides when. A stage unfrozen mid-run is reported to the
    LightningModule (`mark_unfrozen`) so its learning rate warms up from that step.
    """

    def __init__(
        self,
        freeze_backbone: bool,
        unfreeze_backbone_at_epoch: int = -1,
        unfreeze_schedule: dict[str, int] | None = None,
        preset: str | None = None,
        epochs: int | None = None,
    ):
        self.settings = (freeze_backbone, unfreeze_backbone_at_epoch, unfreeze_schedule)
        self.preset = preset
        self.epochs = epochs
        self.plan: UnfreezePlan | None = None
        self.ran: UnfreezePlan | None = None  # the plan within the run's epochs: what really trains

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        auto_tags = self._apply_auto(trainer) if self.preset == AUTO else {}
        self.plan = UnfreezePlan(list(pl_module.model.backbone.trainable_stages), *self.settings)
        epochs = self.epochs or trainer.max_epochs
        self.ran = ran = self.plan.within(epochs)  # what the log and tags say: what really runs, not what was asked
        if not trainer.is_global_zero:
            return
        mismatch = preset_mismatch(self.preset, ran) if self.preset else None
        for warning in ([mismatch] if mismatch else []) + self.plan.warnings(epochs):
            log.warning(warning)
        log.info("fine-tuning strategy %s: %s", ran.kind, ran.describe())
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                tracking.set_tags(logger, {"strategy": ran.kind, "schedule": ran.describe(), **auto_tags})

    def _apply_auto(self, trainer: pl.Trainer) -> dict[str, str]:
        """finetune_strategy=auto (training/loop/finetune_auto.py): the rule on the training image count replaces the
        settings (the feature cache asks this callback for the plan they make)."""
        images = len(trainer.datamodule.train_object_counts().per_image)
        self.settings, tags = auto_settings(self.settings, images)
        return tags

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        wanted = self.plan.trainable_at(epoch)
        backbone = pl_module.model.backbone
        if list(backbone.unfrozen_stages) != wanted:
            pl_module.model.freeze_backbone()
            if wanted:
                pl_module.model.unfreeze_backbone(wanted)
            log.info("epoch %d: backbone stages training: %s", epoch, wanted or "none")
        # Warm-up starts at a stage's own unfreeze epoch; a resumed run restores earlier steps instead.
        starting_now = [s for s in wanted if epoch > 0 and self.plan.start_epochs[s] == epoch]
        pl_module.mark_unfrozen(starting_now, trainer.global_step)
        pl_module.apply_learning_rates()
