"""Stop a diverged run at once and say what to do: a non-finite training loss (checked before backward, so no
optimizer step is taken with it) or non-finite predictions (the matcher finds them on the cost matrix it
copies to the host anyway). The error names the step, the epoch, every group's learning rate and the last
good checkpoint, and the keys to change; train() records it as the MLflow run's FAILED reason.

Cost: one host read of the loss scalar per step (on a GPU the matcher has already waited for the forward pass
by then); the predictions' check is free.
"""

import math

import pytorch_lightning as pl
import torch

from detr_ft.model.loss.matcher import NonFinitePredictions
from detr_ft.training.loop.checkpoint_callbacks import LastCheckpoint


class Diverged(FloatingPointError):
    """Training produced a non-finite loss or non-finite predictions."""


def _last_good_checkpoint(trainer: pl.Trainer, last: LastCheckpoint | None) -> str:
    path = (last.best_model_path if last is not None else "") or trainer.ckpt_path
    if path:
        return f"{path} (train.resume_from={path} continues from it)"
    return "none yet (no epoch finished); the run starts again from train.checkpoint_path"


def explain(trainer: pl.Trainer, cause: str, last: LastCheckpoint | None = None) -> str:
    """The message a user reads when the run diverged: where, with which rates, and what to change."""
    groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
    rates = ", ".join(f"{g.get('name', i)} {g['lr']:.3g}" for i, g in enumerate(groups)) or "n/a"
    head_rate = max((g["lr"] for g in groups), default=math.nan)
    where = "validation" if trainer.validating or trainer.sanity_checking else "training"
    return (
        f"training diverged: {cause}, in {where} at step {trainer.global_step} of epoch {trainer.current_epoch} "
        f"(both count from 0). Learning rates: {rates}. Last good checkpoint: {_last_good_checkpoint(trainer, last)}. "
        f"To fix: lower train.learning_rate (the highest rate now is {head_rate:.3g}; try a tenth), clip gradients "
        f"harder with train.gradient_clip_val (now {trainer.gradient_clip_val}), or, if a mixed precision "
        f"overflowed, train in full precision with train.precision=32 (now {trainer.precision})."
    )


class DivergenceGuard(pl.Callback):
    """Raises `Diverged` at the first non-finite training loss; gives the matcher's NonFinitePredictions the
    same explanation (Lightning re-raises that exception object after `on_exception`)."""

    def __init__(self) -> None:
        self.last_checkpoint: LastCheckpoint | None = None  # handed over by build_callbacks (training/callbacks.py)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise Diverged(
                explain(trainer, f"the loss is {loss.detach().float().cpu().tolist()}", self.last_checkpoint)
            )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFinitePredictions) and not str(exception).startswith("training diverged"):
            exception.args = (explain(trainer, str(exception), self.last_checkpoint),)
