"""The training recipe: compose -> datamodule -> model + criterion -> module -> callbacks, logger -> trainer
-> fit -> summary. Every object comes from its config node through `hydra.utils.instantiate`.

`main()` is only the @hydra.main shell; `train(cfg)` does the work, so tests call it directly.
"""

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from detr_ft import sweep, tracking
from detr_ft.command_line import hydra_app
from detr_ft.config import check_train_values, check_trainer_keys
from detr_ft.training import checkpoints
from detr_ft.training.finetuning import UnfreezePlan, preset_mismatch
from detr_ft.training.initial_weights import load_initial_weights, resolve_checkpoint_path
from detr_ft.training.precision import resolve_precision
from detr_ft.training.summary import RunSummary, next_commands, print_summary

log = logging.getLogger(__name__)


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> RunSummary:
    """Train as `cfg` says and return the summary; `callbacks` are added to the Trainer's (tests use them).

    The MLflow run exists from the start, so a job that fails (bad value, bad checkpoint, a crash in
    training) is recorded FAILED with its error and a sweep's other jobs go on. A resumed run logs into the
    MLflow run its checkpoint records; a sweep's job is a child of the sweep's parent run.
    """
    run_name, sweep_tags = sweep.job_identity(cfg)
    tags = {
        "strategy_preset": cfg.finetune_strategy.name,
        "dataset": str(cfg.data.get("name", "unknown")),
        "model": str(cfg.model.backbone.get("name", "unknown")),
        "git_commit": tracking.git_commit(),
        "monitor": cfg.train.monitor,
        "eval_weights": "raw" if cfg.train.ema_decay is None else "ema",  # the weights val/* metrics come from
        "run_dir": str(cfg.run_dir),
        **sweep_tags,
    }
    logger = instantiate(
        cfg.logger,
        run_name=cfg.logger.run_name or run_name,
        tags=tags,
        metrics_file=str(Path(cfg.run_dir) / "metrics.csv"),
        resume_run_id=_run_to_continue(cfg),
    )
    try:
        return _fit(cfg, logger, callbacks or [])
    except Exception as error:
        tracking.mark_failed(logger, error)
        raise


def _run_to_continue(cfg: DictConfig) -> str | None:
    """The MLflow run that `train.resume_from`'s checkpoint recorded, when it lives in the configured store."""
    if not cfg.train.resume_from:
        return None
    try:
        recorded = checkpoints.read(checkpoints.in_run_folder(cfg.train.resume_from, "last")).mlflow_run
    except Exception:
        return None  # a bad path fails in _starting_points, recorded as a FAILED run
    if recorded and recorded["tracking_uri"] == cfg.logger.tracking_uri:
        return recorded["run_id"]
    if recorded:
        log.warning(
            "train.resume_from's MLflow run %s is in %s, not in logger.tracking_uri=%s: logging to a new run",
            recorded["run_id"],
            recorded["tracking_uri"],
            cfg.logger.tracking_uri,
        )
    return None


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
    _report_object_counts(datamodule, model.num_queries)
    if weights_path is not None:
        report = load_initial_weights(model, weights_path, datamodule.class_names)
        log.info("weights from %s: %s", weights_path, report.summary())
        tags |= {
            "weights_from": str(weights_path),
            "class_head": "re-initialised" if report.reinitialized else "loaded",
            **({"query_embeddings": report.queries} if report.queries else {}),
        }
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    tags["precision"] = precision  # what ran, also when train.precision=auto
    tracking.set_tags(logger, tags)

    module = instantiate(cfg.module, model=model, criterion=criterion)
    callbacks = [instantiate(node) for node in cfg.callbacks.values() if node is not None]
    resolved = OmegaConf.to_yaml(cfg, resolve=True)  # stored in every checkpoint and beside them
    callbacks += [checkpoints.RunMetadata(resolved, tracking.run_reference(logger)), *extra_callbacks]
    trainer = instantiate(
        cfg.trainer, logger=logger if logger is not None else False, callbacks=callbacks, precision=precision
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_path) if resume_path else None)

    summary = RunSummary.from_trainer(trainer, logger, cfg.logger.tracking_uri)
    summary.tracking_note = logger.status_note() if logger is not None else None
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
    if cfg.train.resume_from:
        sweep.after_resumed_job(logger)
    print_summary(summary)
    return summary


def _report_object_counts(datamodule, num_queries: int) -> None:
    """Warn when some train image holds more objects than the model can predict (its query count)."""
    counts = datamodule.train_object_counts()
    log.info("train %s", counts.describe(num_queries))
    if warning := counts.warning(num_queries):
        log.warning(warning)


def _describe_strategy(cfg: DictConfig, model) -> dict[str, str]:
    """Log (and tag) what the strategy will really do; warn when overrides make the preset something else."""
    plan = UnfreezePlan.from_train_config(cfg.train, model.backbone.trainable_stages)
    mismatch = preset_mismatch(cfg.finetune_strategy.name, plan)
    for warning in ([mismatch] if mismatch else []) + plan.warnings(cfg.train.epochs):
        log.warning(warning)
    log.info("fine-tuning strategy %s: %s", plan.kind, plan.describe())
    return {"strategy": plan.kind, "schedule": plan.describe()}


@hydra_app("config")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    return summary.best_value  # what a Hydra sweeper (e.g. Optuna) optimises
