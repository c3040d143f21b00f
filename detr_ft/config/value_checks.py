"""Value checks the config's types cannot express, run by train() before any data is read: `train.*` values in
range, `model.*` values in range (model_checks.py), and `trainer.*` keys that pytorch_lightning.Trainer takes."""

import inspect
import math

import pytorch_lightning as pl
from omegaconf import DictConfig

from detr_ft.config.errors import ConfigError
from detr_ft.config.model_checks import check_model_values
from detr_ft.config.schema import TrainConfig


def check_config(cfg: DictConfig) -> None:
    check_train_values(cfg.train)
    check_model_values(cfg.model)
    check_trainer_keys(cfg.trainer)


def check_trainer_keys(trainer_cfg: DictConfig) -> None:
    """Fail before any data is read when `trainer.*` holds a key pytorch_lightning.Trainer does not take."""
    accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(set(trainer_cfg.keys()) - accepted - {"_target_"})
    if unknown:
        raise ConfigError(
            f"Unknown trainer key(s) {unknown} in the config's `trainer:` group; "
            f"valid keys are pytorch_lightning.Trainer arguments, e.g. {sorted(accepted)[:12]} ..."
        )


# key -> (smallest valid value, whether that value itself is valid, what the key means when it is valid)
_RANGES = {
    "epochs": (1, True, "the number of epochs"),
    "batch_size": (1, True, "images per step"),
    "learning_rate": (0, True, "e.g. 1e-4; 0 trains nothing"),
    "backbone_learning_rate": (0, True, "or null for 0.1 x train.learning_rate"),
    "weight_decay": (0, True, "0: none"),
    "gradient_clip_val": (0, True, "0: no clipping"),
    "lr_drop_factor": (0, False, "e.g. 0.1"),
    "warmup_steps": (0, True, "0: no warm-up"),
    "unfreeze_warmup_steps": (0, True, "0: no warm-up"),
    "num_workers": (0, True, "0: load in the main process"),
}


def check_ranges(train: TrainConfig | DictConfig) -> None:
    """Every number in `_RANGES` finite and in range (null allowed where the key allows it), named as typed."""
    for key, (low, inclusive, meaning) in _RANGES.items():
        value = train.get(key) if isinstance(train, DictConfig) else getattr(train, key, None)
        if value is None:
            continue
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"train.{key} must be {bound} ({meaning}), got {value}")
    for epoch in train.lr_drop_epochs or []:
        if epoch < 0:
            raise ConfigError(f"train.lr_drop_epochs must list epochs >= 0, got {list(train.lr_drop_epochs)}")


def check_train_values(train: TrainConfig | DictConfig) -> None:
    """Value checks the type system cannot express."""
    check_ranges(train)
    if train.unfreeze_backbone_at_epoch < -1:
        raise ConfigError(
            f"train.unfreeze_backbone_at_epoch must be -1 (never) or an epoch >= 0, "
            f"got {train.unfreeze_backbone_at_epoch}"
        )
    if train.ema_decay is not None and not 0.0 < train.ema_decay < 1.0:
        raise ConfigError(
            f"train.ema_decay must be between 0 and 1 (e.g. 0.993), or null for no EMA; got {train.ema_decay}"
        )
    if train.ema_warmup_steps < 0:
        raise ConfigError(f"train.ema_warmup_steps must be >= 0 (0: no warm-up), got {train.ema_warmup_steps}")
    if train.early_stopping_patience is not None and train.early_stopping_patience < 1:
        raise ConfigError(
            f"train.early_stopping_patience must be >= 1 (validations without improvement), or null for no early "
            f"stopping; got {train.early_stopping_patience}"
        )
    if train.early_stopping_min_epochs < 0 or train.early_stopping_min_delta < 0:
        raise ConfigError(
            "train.early_stopping_min_epochs and train.early_stopping_min_delta must be >= 0, got "
            f"{train.early_stopping_min_epochs} and {train.early_stopping_min_delta}"
        )
    if str(train.precision) not in {"32", "16-mixed", "bf16-mixed", "64", "16", "bf16", "32-true", "auto"}:
        raise ConfigError(f"train.precision must be 32, 16-mixed, bf16-mixed or auto, got {train.precision!r}")
