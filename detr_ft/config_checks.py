"""Value checks the config's types cannot express, run by train() before any data is read: `train.*` values in
range, and `trainer.*` keys that pytorch_lightning.Trainer takes."""

import inspect

import pytorch_lightning as pl
from omegaconf import DictConfig

from detr_ft.config import TrainConfig


def check_config(cfg: DictConfig) -> None:
    check_train_values(cfg.train)
    check_trainer_keys(cfg.trainer)


def check_trainer_keys(trainer_cfg: DictConfig) -> None:
    """Fail before any data is read when `trainer.*` holds a key pytorch_lightning.Trainer does not take."""
    accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(trainer_cfg.keys()) - accepted - {"_target_"})
    if unknown:
        raise ValueError(
            f"Unknown trainer key(s) {unknown} in the config's `trainer:` group; "
            f"valid keys are pytorch_lightning.Trainer arguments, e.g. {sorted(accepted)[:12]} ..."
        )


def check_train_values(train: TrainConfig | DictConfig) -> None:
    """Value checks the type system cannot express."""
    if train.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {train.epochs}")
    if train.batch_size < 1:
        raise ValueError(f"train.batch_size must be >= 1, got {train.batch_size}")
    if train.unfreeze_backbone_at_epoch < -1:
        raise ValueError(
            f"train.unfreeze_backbone_at_epoch must be -1 (never) or an epoch >= 0, "
            f"got {train.unfreeze_backbone_at_epoch}"
        )
    if train.ema_decay is not None and not 0.0 < train.ema_decay < 1.0:
        raise ValueError(
            f"train.ema_decay must be between 0 and 1 (e.g. 0.993), or null for no EMA; got {train.ema_decay}"
        )
    if train.ema_warmup_steps < 0:
        raise ValueError(f"train.ema_warmup_steps must be >= 0 (0: no warm-up), got {train.ema_warmup_steps}")
    if train.early_stopping_patience is not None and train.early_stopping_patience < 1:
        raise ValueError(
            f"train.early_stopping_patience must be >= 1 (validations without improvement), or null for no early "
            f"stopping; got {train.early_stopping_patience}"
        )
    if train.early_stopping_min_epochs < 0 or train.early_stopping_min_delta < 0:
        raise ValueError(
            "train.early_stopping_min_epochs and train.early_stopping_min_delta must be >= 0, got "
            f"{train.early_stopping_min_epochs} and {train.early_stopping_min_delta}"
        )
    if str(train.precision) not in {"32", "16-mixed", "bf16-mixed", "64", "16", "bf16", "32-true", "auto"}:
        raise ValueError(f"train.precision must be 32, 16-mixed, bf16-mixed or auto, got {train.precision!r}")
