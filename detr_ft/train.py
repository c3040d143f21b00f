"""The training recipe: compose -> datamodule -> model + criterion -> module -> callbacks, logger -> trainer
-> fit -> summary. Every object comes from its config node through `hydra.utils.instantiate`.

`main()` is only the @hydra.main shell; `train(cfg)` does the work, so tests call it directly.
"""

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from detr_ft import tracking
from detr_ft.config import check_train_values, check_trainer_keys, config_dir
from detr_ft.training import checkpoints
from detr_ft.training.finetuning import UnfreezePlan, preset_mismatch
from detr_ft.training.initial_weights import load_initial_weights, resolve_checkpoint_path
from detr_ft.training.summary import RunSummary, next_commands, print_summary

log = logging.getLogger(__name__)


def _run_name_and_sweep(cfg: DictConfig) -> tuple[str, str | None]:
    """The run's name (from its command-line overrides) and its sweep's folder when Hydra runs a multirun."""
    if not HydraConfig.initialized():
        return cfg.finetune_strategy.name, None
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"
    name = tracking.run_name_from_overrides(list(hydra_cfg.overrides.task), default=cfg.finetune_strategy.name)
    return name, str(hydra_cfg.sweep.dir) if multirun else None


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> RunSummary:
    """Train as `cfg` says and return the summary; `callbacks` are added to the Trainer's (tests use them).

    The MLflow run exists from the start, so a job that fails (bad value, bad checkpoint, a crash in
    training) is recorded FAILED with its error and a sweep's other jobs go on.
    """
    run_name, sweep = _run_name_and_sweep(cfg)
    tags = {
        "strategy_preset": cfg.finetune_strategy.name,
        "dataset": str(cfg.data.get("name", "unknown")),
        "model": str(cfg.model.backbone.get("name", "unknown")),
        "git_commit": tracking.git_commit(),
        "monitor": cfg.train.monitor,
        "run_dir": str(cfg.run_dir),
        **({"sweep": sweep} if sweep else {}),
    }
    logger = instantiate(cfg.logger, run_name=cfg.logger.run_name or run_name, tags=tags)
    try:
        return _fit(cfg, logger, callbacks or [])
    except Exception as error:
        tracking.mark_failed(logger, error)
        raise


def _starting_points(cfg: DictConfig) -> tuple[Path | None, Path | None]:
    """(weights to fine-tune from, checkpoint to resume), checked before any data is read."""
    if cfg.train.resume_from:
        return None, checkpoints.check_resumable(cfg.train.resume_from)
    if cfg.train.checkpoint_path:
        return resolve_checkpoint_path(str(cfg.train.checkpoint_path), cfg.logger.tracking_uri), None
    return None, None


def _fit(cfg: DictConfig, logger, extra_callbacks: list[pl.Callback]) -> RunSummary:
    check_train_values(cfg.train)
    check_trainer_keys(cfg.trainer)
    run_dir = Path(cfg.run_dir)
    checkpoints.refuse_to_overwrite(run_dir, resuming=bool(cfg.train.resume_from))
    pl.seed_everything(cfg.train.seed, workers=True)
    if logger is not None:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    weights_path, resume_path = _starting_points(cfg)

    datamodule = instantiate(
        cfg.data, batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers, sampling_seed=cfg.train.seed
    )
    model = instantiate(cfg.model, num_classes=datamodule.num_classes)
    checkpoints.check_run_folder(run_dir / "checkpoints", model)  # unwritable or full: say so before training
    criterion = instantiate(cfg.criterion, num_classes=datamodule.num_classes)
    tags = _describe_strategy(cfg, model)
    if weights_path is not None:
        report = load_initial_weights(model, weights_path, datamodule.class_names)
        log.info("weights from %s: %s", weights_path, report.summary())
        tags |= {
            "weights_from": str(weights_path),
            "class_head": "re-initialised" if report.reinitialized else "loaded",
        }
    tracking.set_tags(logger, tags)

    module = instantiate(cfg.module, model=model, criterion=criterion)
    callbacks = [instantiate(node) for node in cfg.callbacks.values() if node is not None]
    resolved = OmegaConf.to_yaml(cfg, resolve=True)  # stored in every checkpoint and beside them
    callbacks += [checkpoints.RunMetadata(resolved), *extra_callbacks]
    trainer = instantiate(cfg.trainer, logger=logger if logger is not None else False, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_path) if resume_path else None)

    summary = RunSummary.from_trainer(trainer, logger, cfg.logger.tracking_uri)
    summary.class_head = tags.get("class_head")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    summary.commands = next_commands(str(run_dir.resolve()), overrides)
    if not trainer.is_global_zero:  # under DDP the first process writes, logs and prints for all
        return summary
    (run_dir / "config.yaml").write_text(resolved)
    uploads = [run_dir / "config.yaml", run_dir / "val_detections_best.json"]
    if cfg.logger.get("log_best_checkpoint") and summary.best_checkpoint:
        uploads.append(Path(summary.best_checkpoint))
    tracking.log_run_end(logger, summary.tags(), uploads)
    print_summary(summary)
    return summary


def _describe_strategy(cfg: DictConfig, model) -> dict[str, str]:
    """Log (and tag) what the strategy will really do; warn when overrides make the preset something else."""
    plan = UnfreezePlan.from_train_config(cfg.train, model.backbone.trainable_stages)
    mismatch = preset_mismatch(cfg.finetune_strategy.name, plan)
    for warning in ([mismatch] if mismatch else []) + plan.warnings(cfg.train.epochs):
        log.warning(warning)
    log.info("fine-tuning strategy %s: %s", plan.kind, plan.describe())
    return {"strategy": plan.kind, "schedule": plan.describe()}


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    return summary.best_value  # what a Hydra sweeper (e.g. Optuna) optimises
