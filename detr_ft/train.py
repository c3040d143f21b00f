"""The training recipe: compose -> datamodule -> model -> LightningModule -> Trainer -> fit -> summary.

`main()` is only the @hydra.main shell; `train(cfg)` does the work, so tests call it directly.
"""

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar

from detr_ft import tracking
from detr_ft.config import check_train_values, check_trainer_keys, config_dir
from detr_ft.finetuning import BackboneUnfreezing, UnfreezePlan, preset_overrides
from detr_ft.initial_weights import check_resume_checkpoint, load_initial_weights, resolve_checkpoint_path
from detr_ft.lit_module import DetrLitModule
from detr_ft.lr_schedule import LearningRateSchedule
from detr_ft.summary import RunSummary, print_summary

log = logging.getLogger(__name__)


def _run_context(cfg: DictConfig) -> tuple[Path, str, str | None]:
    """Run folder, run name and sweep id, from Hydra when it launched us, else from `hydra.run.dir`-less defaults."""
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        multirun = hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"
        sweep = str(hydra_cfg.sweep.dir) if multirun else None
        overrides = list(hydra_cfg.overrides.task)
    else:
        run_dir, sweep, overrides = Path("outputs/run"), None, []
    name = tracking.run_name_from_overrides(overrides, default=cfg.finetune_strategy.name)
    return run_dir, name, sweep


def _checkpoint_callbacks(run_dir: Path, monitor: str) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """best_epoch=E-step=S-<metric>=V.ckpt (val/mAP is written val_mAP: no '/' in file names) and last.ckpt.

    last.ckpt has a callback of its own: Lightning's `save_last=True` rewrites it only in epochs where the
    best file changes, so it would hold the best epoch rather than the last, and a resume would go back.
    """
    folder, on_train_epoch_end = run_dir / "checkpoints", monitor.startswith("train") or None
    best = ModelCheckpoint(
        dirpath=folder,
        filename=f"best_epoch={{epoch}}-step={{step}}-{monitor.replace('/', '_')}={{{monitor}:.4f}}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="min" if "loss" in monitor else "max",
        save_top_k=1,
        save_on_train_epoch_end=on_train_epoch_end,
    )
    last = ModelCheckpoint(  # no monitor + top 1 = the newest epoch, always under the same name
        dirpath=folder,
        filename="last",
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=on_train_epoch_end,
    )
    return best, last


def _refuse_to_overwrite_checkpoints(run_dir: Path, resuming: bool) -> None:
    """A run folder reused by hand (hydra.run.dir=...) must not overwrite another run's checkpoints."""
    folder = run_dir / "checkpoints"
    if not resuming and folder.is_dir() and any(folder.glob("*.ckpt")):
        raise FileExistsError(
            f"{folder} already holds checkpoints of an earlier run; choose another hydra.run.dir, or continue "
            f"that run with train.resume_from={folder / 'last.ckpt'}"
        )


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> RunSummary:
    """Train as `cfg` says and return the summary; `callbacks` are added to the Trainer's (tests use them).

    The MLflow run exists from the start, so a job that fails (bad value, bad checkpoint, a crash in
    training) is recorded FAILED with its error and a sweep's other jobs go on.
    """
    run_dir, run_name, sweep = _run_context(cfg)
    tags = {
        "strategy": cfg.finetune_strategy.name,
        "dataset": str(cfg.data.get("name", "unknown")),
        "model": str(cfg.model.backbone.get("name", "unknown")),
        "git_commit": tracking.git_commit(),
        "monitor": cfg.train.monitor,
        "run_dir": str(run_dir),
    }
    if sweep:
        tags["sweep"] = sweep
    logger = tracking.build_logger(cfg.logger, run_name, tags)
    try:
        return _train(cfg, run_dir, logger, callbacks or [])
    except Exception as error:
        tracking.mark_failed(logger, error)
        raise


def _train(cfg: DictConfig, run_dir: Path, logger, callbacks: list[pl.Callback]) -> RunSummary:
    train_cfg = cfg.train
    check_train_values(train_cfg)
    check_trainer_keys(cfg.trainer)
    _refuse_to_overwrite_checkpoints(run_dir, resuming=bool(train_cfg.resume_from))
    pl.seed_everything(train_cfg.seed, workers=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if logger is not None:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    # Paths are checked before any data is read or generated.
    resume_path = check_resume_checkpoint(train_cfg.resume_from) if train_cfg.resume_from else None
    weights_path = None
    if train_cfg.checkpoint_path and resume_path is None:
        weights_path = resolve_checkpoint_path(str(train_cfg.checkpoint_path), cfg.logger.tracking_uri)

    datamodule = instantiate(cfg.data, batch_size=train_cfg.batch_size, num_workers=train_cfg.num_workers)
    num_classes = datamodule.num_classes
    model = instantiate(cfg.model, num_classes=num_classes)
    criterion = instantiate(cfg.criterion, num_classes=num_classes)
    late_tags = {}
    if weights_path is not None:
        load_report = load_initial_weights(model, weights_path, datamodule.class_names)
        log.info("weights from %s: %s", weights_path, load_report.summary())
        late_tags["weights_from"] = str(weights_path)
        late_tags["class_head"] = "re-initialised" if load_report.reinitialized else "loaded"

    plan = UnfreezePlan(
        list(model.backbone.trainable_stages),
        train_cfg.freeze_backbone,
        train_cfg.unfreeze_backbone_at_epoch,
        OmegaConf.to_container(train_cfg.unfreeze_schedule) if train_cfg.unfreeze_schedule else None,
    )
    for warning in preset_overrides(train_cfg, cfg.finetune_strategy) + plan.warnings(train_cfg.epochs):
        log.warning(warning)
    log.info("fine-tuning strategy %s: %s", cfg.finetune_strategy.name, plan.describe())
    late_tags["schedule"] = plan.describe()
    tracking.set_tags(logger, late_tags)

    datamodule.setup("fit")
    module = DetrLitModule(
        model,
        criterion,
        datamodule.category_map,
        learning_rate=train_cfg.learning_rate,
        backbone_learning_rate=train_cfg.backbone_learning_rate or 0.1 * train_cfg.learning_rate,
        weight_decay=train_cfg.weight_decay,
        schedule=LearningRateSchedule(
            warmup_steps=train_cfg.warmup_steps,
            lr_drop_epochs=tuple(train_cfg.lr_drop_epochs),
            lr_drop_factor=train_cfg.lr_drop_factor,
            unfreeze_warmup_steps=train_cfg.unfreeze_warmup_steps,
        ),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        run_dir=str(run_dir),
        val_coco=datamodule.val_dataset.coco,
    )
    checkpoints, last_checkpoint = _checkpoint_callbacks(run_dir, train_cfg.monitor)
    trainer = pl.Trainer(
        **OmegaConf.to_container(cfg.trainer),
        max_epochs=train_cfg.epochs,
        precision=train_cfg.precision,
        gradient_clip_val=train_cfg.gradient_clip_val or None,
        logger=logger if logger is not None else False,
        callbacks=[
            BackboneUnfreezing(plan),
            checkpoints,
            last_checkpoint,  # after the best one, so last.ckpt holds its up-to-date state for a resume
            TQDMProgressBar(refresh_rate=10),
            tracking.PredictionPictureLogger(run_dir),
            *callbacks,
        ],
        default_root_dir=str(run_dir),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_path) if resume_path else None)

    summary = RunSummary.from_training(trainer, module, checkpoints, last_checkpoint, logger, cfg.logger)
    summary.class_head = late_tags.get("class_head")
    (run_dir / "config.yaml").write_text(module.config_yaml)
    uploads = [run_dir / "config.yaml", run_dir / "val_detections_best.json"]
    if cfg.logger.get("log_best_checkpoint") and summary.best_checkpoint:
        uploads.append(Path(summary.best_checkpoint))
    tracking.log_run_end(logger, summary.tags(), uploads)
    print_summary(summary)
    return summary


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    return summary.best_value  # what a Hydra sweeper (e.g. Optuna) optimises
