"""The Lightning callbacks that write a run's checkpoints: `best_...ckpt` and `last.ckpt` in
`<run_dir>/checkpoints`, each written whole (detr_ft.checkpoints.atomic_write) and carrying our metadata entry
(detr_ft.checkpoints.checkpoint_file owns its layout)."""

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger

from detr_ft import tracking
from detr_ft.checkpoints.checkpoint_file import metadata_entry
from detr_ft.training.guards.run_folder import check_run_folder, checkpoint_bytes
from detr_ft.training.loop.ema import ExponentialMovingAverage
from detr_ft.training.loop.finetuning import BackboneUnfreezing
from detr_ft.training.loop.monitor import monitor_mode


class RunMetadata(pl.Callback):
    """Adds the resolved config (YAML text), the category map and the MLflow run ({run_id, tracking_uri}: what
    a resume logs into) to every checkpoint the run writes."""

    def __init__(self, config_yaml: str | None = None):
        self.config_yaml = config_yaml
        self.mlflow_run: dict[str, str] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        mlflow = next((logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)), None)
        self.mlflow_run = tracking.run_reference(mlflow)  # asked once: the server may go away mid-run

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        category_map = trainer.datamodule.category_map.to_dict()
        checkpoint.update(metadata_entry(self.config_yaml, category_map, self.mlflow_run))


class BestCheckpoint(ModelCheckpoint):
    """`best_epoch=E-step=S-<metric>=V.ckpt` (val/mAP is written val_mAP: no '/' in file names), the best epoch
    by `monitor` (min for losses, max otherwise). Checks at set-up that its folder is writable with room for the
    run's checkpoints. Remembers the best epoch and the validation metrics it had,
    so the run summary never parses them back out of the file name."""

    def __init__(self, dirpath: str | Path, monitor: str):
        super().__init__(
            dirpath=dirpath,
            filename=f"best_epoch={{epoch}}-step={{step}}-{monitor.replace('/', '_')}={{{monitor}:.4f}}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=monitor_mode(monitor),
            save_top_k=1,
            save_on_train_epoch_end=monitor.startswith("train") or None,
        )
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        # Handed over by build_callbacks (training/callbacks.py): what the checkpoints will hold, for their size.
        self.unfreezing: BackboneUnfreezing | None = None
        self.ema: ExponentialMovingAverage | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Lightning runs checkpoint callbacks last: the strategy's setup has built its plan.
        unfreezing = self.unfreezing
        stages = list(unfreezing.ran.start_epochs) if unfreezing and unfreezing.ran else None
        size = checkpoint_bytes(pl_module.model, stages, bool(self.ema and self.ema.enabled))
        check_run_folder(self.dirpath, pl_module.model, size)  # unwritable or full: say so before the first step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remember_new_best(trainer, lambda: super(BestCheckpoint, self).on_train_epoch_end(trainer, pl_module))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remember_new_best(trainer, lambda: super(BestCheckpoint, self).on_validation_end(trainer, pl_module))

    def _remember_new_best(self, trainer: pl.Trainer, save) -> None:
        # The file changes only when this epoch beats the best so far (top 1): then it is the new best.
        before = self.best_model_path
        save()
        if self.best_model_path and self.best_model_path != before:
            self.best_epoch = trainer.current_epoch
            self.best_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch, "best_metrics": dict(self.best_metrics)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")
        self.best_metrics = dict(state_dict.get("best_metrics", {}))


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`, rewritten after every epoch: what `train.resume_from` continues.

    Its own callback (no monitor, top 1, one name): Lightning's `save_last=True` rewrites last.ckpt only in
    epochs where the best file changes, so it would hold the best epoch and a resume would go back in time.
    """

    def __init__(self, dirpath: str | Path, monitor: str):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=monitor.startswith("train") or None,
        )
