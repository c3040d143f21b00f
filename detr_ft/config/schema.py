"""The typed schema of conf/config.yaml, registered in Hydra's ConfigStore as `detr_ft_schema`, and the
derived values the config computes (`${backbone_lr:...}`, `${asset:...}`).

A misspelt key or a value of the wrong type fails while Hydra composes, before any data is read.
`model`, `criterion`, `data`, `module`, `callbacks`, `logger` and `trainer` are `_target_` trees that
`train(cfg)` builds with `hydra.utils.instantiate`; they are checked where they are built (see
`check_trainer_keys`). The secondary entry points' small schemas (entry_point_schemas.py) are registered
here too, so a misspelt key fails there the same way.
"""

import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from detr_ft.config.entry_point_schemas import (
    BackbonePretrainingConfig,
    CheckConfig,
    CompareConfig,
    ExportConfig,
    PredictConfig,
    TrackingStoreConfig,
)
from detr_ft.training.loop.precision import resolve_precision

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ASSETS_DIR = PACKAGE_DIR / "assets"


def config_dir() -> Path:
    """conf/ beside the package in a source checkout, detr_ft/conf inside an installed wheel."""
    in_checkout = PACKAGE_DIR.parent / "conf"
    return in_checkout if in_checkout.is_dir() else PACKAGE_DIR / "conf"


class LrSchedule(Enum):
    """`train.lr_schedule`: the learning rate's shape over the run (detr_ft/training/loop/lr_schedule.py)."""

    step = "step"  # constant but for train.lr_drop_epochs
    cosine = "cosine"  # x (1 + cos(pi t / T)) / 2 over the run's T optimizer steps, the drops on top


@dataclass
class TrainConfig:
    """The fine-tuning guide's keys (same names, same meanings) and the rest of the recipe. The four keys that
    decide when backbone stages train are written by the chosen `finetune_strategy` preset."""

    checkpoint_path: str | None = None  # weights to start from (fresh optimizer, epoch 0); null = scratch
    resume_from: str | None = None  # a detr_ft .ckpt to continue (optimizer, epoch, strategy state)
    freeze_backbone: bool = True  # the backbone's state at the start
    unfreeze_backbone_at_epoch: int = -1  # N >= 0: unfreeze at the start of epoch N; -1: never
    # Gradual unfreezing, last stage first, e.g. {layer4: 3, layer3: 5, layer2: 7}; replaces the key above.
    # Typed Any: a dict given on the command line (train.unfreeze_schedule={layer4: 3}) cannot replace a typed
    # Optional[Dict] null, nor add keys to an empty typed dict (OmegaConf); UnfreezePlan checks the values.
    unfreeze_schedule: Any = None
    unfreeze_warmup_steps: int = 200  # linear warm-up of a stage's learning rate after it unfreezes
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-4
    backbone_learning_rate: float | None = None  # null = 0.1 x learning_rate (the paper's 1e-4 / 1e-5)
    weight_decay: float = 1e-4
    num_workers: int = 4
    accumulate_grad_batches: int = 1  # one optimizer step every N batches (Lightning's gradient accumulation)
    warmup_steps: int = 0  # linear warm-up of every group at the start of training
    lr_drop_epochs: list[int] = field(default_factory=list)  # learning rates x lr_drop_factor at these epochs
    lr_drop_factor: float = 0.1
    lr_schedule: LrSchedule = LrSchedule.step
    gradient_clip_val: float = 0.1
    precision: str = "32"  # 32 | 16-mixed | bf16-mixed | auto (bf16-mixed where the hardware has native bf16)
    seed: int = 42
    monitor: str = "val/mAP"  # or train_loss, the fine-tuning guide's checkpoint metric
    # EMA of the weights (RF-DETR: 0.993); null = off. On: validation, the best checkpoint, predict, export use it.
    ema_decay: float | None = None
    ema_warmup_steps: float = 100.0  # decay_t = ema_decay * (1 - exp(-t / this)); 0 = no warm-up
    # Stop when `monitor` has not improved by more than min_delta for this many validations; null = off.
    early_stopping_patience: int | None = None
    early_stopping_min_epochs: int = 0  # never stop before this many epochs have run
    early_stopping_min_delta: float = 0.0
    # Reuse the frozen backbone's per-image outputs across epochs and jobs (needs a backbone that never trains
    # and data.train_augmentation=false); stored under feature_cache_dir (null: $DETR_FT_CACHE or
    # ~/.cache/detr_ft, then /features).
    cache_backbone_features: bool = False
    feature_cache_dir: str | None = None


@dataclass
class StrategyConfig:
    """The chosen conf/finetune_strategy preset's name (its values are written under train.*)."""

    name: str = MISSING


class ModelToLog(Enum):
    """`logger.log_model`: which checkpoint becomes the run's MLflow model."""

    best = "best"
    last = "last"
    none = "none"


@dataclass
class LoggerConfig(TrackingStoreConfig):
    _target_: str = "detr_ft.tracking.mlflow_logger"  # or detr_ft.tracking.no_logger (logger=none)
    run_name: str | None = None
    log_best_checkpoint: bool = False
    log_model: ModelToLog = ModelToLog.best  # the checkpoint logged as the run's MLflow model (runs:/<id>/model)
    register_model: str | None = None  # a Model Registry name: the model (a sweep's best job's) is registered


@dataclass
class DetrFtConfig:
    run_dir: str | None = None  # conf/config.yaml: Hydra's output folder (unset while printing --cfg)
    default_weights: str | None = None  # the model option's (conf/model/*.yaml): train.checkpoint_path's default
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune_strategy: StrategyConfig = field(default_factory=StrategyConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    model: Any = MISSING
    criterion: Any = MISSING
    data: Any = MISSING
    module: Any = MISSING
    callbacks: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is `???`, read without resolving (an interpolation to a `???` is not one)."""
    if isinstance(node, dict):
        return [key for name, value in node.items() for key in _missing_keys(value, f"{prefix}{name}.")]
    return [prefix[:-1]] if node == "???" else []


def exit_if_missing(cfg: DictConfig, app: str) -> None:
    """End a command-line tool with one line naming the required keys (`???`) the command did not set."""
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        sys.exit(f"error: missing {', '.join(f'{key}=...' for key in missing)} (see python -m {app} --help)")


def _asset(name: str) -> str:
    return str(ASSETS_DIR / name)


def backbone_learning_rate(explicit: float | None, head: float) -> float:
    """The backbone's learning rate: `train.backbone_learning_rate`, or by default 0.1 x the head's (the
    paper's 1e-4 / 1e-5). The one place this rule lives (`${backbone_lr:...}` in conf/config.yaml)."""
    return float(explicit) if explicit is not None else 0.1 * float(head)


def register() -> None:
    """Register the schemas and the resolvers: `${asset:NAME}` (a file shipped in detr_ft/assets),
    `${precision:VALUE,ACCELERATOR}` (train.precision with auto decided) and `${backbone_lr:...}`."""
    ConfigStore.instance().store(name="detr_ft_schema", node=DetrFtConfig)
    ConfigStore.instance().store(name="pretrain_backbone_schema", node=BackbonePretrainingConfig)
    ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
    ConfigStore.instance().store(name="export_schema", node=ExportConfig)
    ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
    ConfigStore.instance().store(name="check_schema", node=CheckConfig)
    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", _asset)
    if not OmegaConf.has_resolver("precision"):  # cached: `auto` is decided (and logged) once per process
        OmegaConf.register_new_resolver("precision", resolve_precision, use_cache=True)
    if not OmegaConf.has_resolver("backbone_lr"):
        OmegaConf.register_new_resolver("backbone_lr", backbone_learning_rate)
    from detr_ft.training.guards import job_folder_lock  # `${locked_job_folder:...}`: hydra.sweep.subdir

    job_folder_lock.register()


register()
