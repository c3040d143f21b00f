"""Early stopping on the monitored metric (`train.monitor`, the one the best checkpoint uses, read the same way:
lower is better for losses, higher otherwise), with `train.early_stopping_patience` (null = off) and
`train.early_stopping_min_delta`; `train.early_stopping_min_epochs` is the Trainer's `min_epochs` (Lightning
keeps a run going until then). And the reason a run stopped, in words, for the summary and the MLflow tag
`stop_reason`.

In a sweep each job has its own trainer and callback, so a stop ends that job only.
"""

import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping as LightningEarlyStopping

from detr_ft.training.loop.monitor import monitor_mode

log = logging.getLogger(__name__)


class EarlyStopping(LightningEarlyStopping):
    """Lightning's early stopping (patience counted in validations without an improvement of more than
    `min_delta` over the best so far; a non-finite metric stops at once; any rank stopping stops all), plus:
    `patience=None` turns it off, and `reason` says why it stopped. Only its public hooks are extended.
    """

    def __init__(self, monitor: str, patience: int | None, min_delta: float = 0.0):
        super().__init__(monitor=monitor, patience=patience or 0, min_delta=min_delta, mode=monitor_mode(monitor))
        self.enabled = patience is not None
        self.best_epoch: int | None = None
        self.reason: str | None = None  # set when this callback stopped the run (this fit, not a resumed one's)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self._explained(trainer, lambda: super(EarlyStopping, self).on_train_epoch_end(trainer, pl_module))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self._explained(trainer, lambda: super(EarlyStopping, self).on_validation_end(trainer, pl_module))

    def _explained(self, trainer: pl.Trainer, check) -> None:
        """Runs Lightning's check, then notes the best epoch and, when it said stop, why."""
        previous_best, previous_stop = self.best_score, self.stopped_epoch
        check()
        if self.best_score is not previous_best:  # Lightning replaces best_score when a value improves on it
            self.best_epoch = trainer.current_epoch
        if trainer.should_stop and self.stopped_epoch == trainer.current_epoch and self.stopped_epoch != previous_stop:
            current = float(trainer.callback_metrics[self.monitor])
            every_epoch = trainer.check_val_every_n_epoch == 1 or self.monitor.startswith("train")
            self.reason = self._describe_stop(current, trainer.current_epoch, every_epoch, trainer.min_epochs)
            log.info(self.reason)

    def _describe_stop(self, current: float, epoch: int, every_epoch: bool, min_epochs: int | None) -> str:
        best = f"best {float(self.best_score):.4f} at epoch {self.best_epoch}"
        if current != current or current in (float("inf"), float("-inf")):
            return f"early stop after epoch {epoch}: {self.monitor} is {current}, not finite ({best})"
        return (
            f"early stop after epoch {epoch}: {self.monitor} did not improve by more than {abs(self.min_delta):g} "
            f"for {self.wait_count} {'epoch(s)' if every_epoch else 'validation(s)'} (patience {self.patience}"
            + (f", min epochs {min_epochs}" if min_epochs else "")
            + f"); {best}"
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        patience = self.patience  # a resumed run keeps the patience it was given, not the checkpoint's
        super().load_state_dict(state_dict)
        self.patience = patience
        self.best_epoch = state_dict.get("best_epoch")


def stop_reason(trainer: pl.Trainer, early_stopping: "EarlyStopping | None") -> str:
    """Why `trainer.fit` ended, in words: early stop (with its numbers), interrupted, or the epoch/step limit."""
    if early_stopping is not None and early_stopping.reason:
        return early_stopping.reason
    if trainer.interrupted:
        return f"interrupted during epoch {trainer.current_epoch}"
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return f"max steps: reached {trainer.max_steps} (trainer.max_steps)"
    return f"max epochs: ran all {trainer.max_epochs} (train.epochs)"
