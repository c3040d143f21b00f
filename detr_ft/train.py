"""The training recipe: compose -> datamodule -> model + criterion -> module -> callbacks, loggers -> trainer
-> fit -> summary. Every object comes from its config node through `hydra.utils.instantiate`.

`main()` is only the @hydra.main shell; `train(cfg)` does the work, so tests call it directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from detr_ft.config.command_line import hydra_app
from detr_ft.training.guards import run_lock

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from detr_ft.training.reports.summary import RunSummary


def train(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> RunSummary:
    """Train as `cfg` says and return the summary; `callbacks` are added to the Trainer's (tests use them).

    The MLflow run exists from the start, so a job that fails (bad value, bad checkpoint, a crash in
    training) is recorded FAILED with its error and a sweep's other jobs go on. A resumed run logs into the
    MLflow run its checkpoint records; a sweep's job is a child of the sweep's parent run.
    """
    # Imported here, when a job runs: `--help`, `--cfg job` and a misspelt key's error never load torch or MLflow.
    import pytorch_lightning as pl

    from detr_ft import tracking
    from detr_ft.checkpoints.initial_weights import load_starting_weights, starting_points
    from detr_ft.checkpoints.lightning_io import resume_path
    from detr_ft.checkpoints.resume import ResumePoint, refuse_finished_run
    from detr_ft.config.value_checks import check_config
    from detr_ft.inference.model_logging import log_run_model
    from detr_ft.training.callbacks import build_callbacks
    from detr_ft.training.guards.run_ending import RunEnding
    from detr_ft.training.guards.run_folder import refuse_to_overwrite
    from detr_ft.training.guards.signals import Interruption
    from detr_ft.training.reports.summary import RunSummary, print_summary

    run_name, sweep_tags = tracking.job_identity(cfg)
    tags = {
        "strategy_preset": cfg.finetune_strategy.name,
        "dataset": str(cfg.data.get("name", "unknown")),
        "model": str(cfg.model.backbone.get("name", "unknown")),
        "git_commit": tracking.git_commit(),
        "monitor": cfg.train.monitor,
        "eval_weights": "raw" if cfg.train.ema_decay is None else "ema",  # the weights val/* metrics come from
        "precision": str(cfg.trainer.precision),  # what runs, also when train.precision=auto
        "run_dir": str(cfg.run_dir),
        **sweep_tags,
    }
    resume = ResumePoint.read(cfg.train.resume_from)  # the one read of the resume checkpoint
    resume_run_id = resume.mlflow_run_id(cfg.logger.tracking_uri)
    logger = instantiate(cfg.logger, run_name=cfg.logger.run_name or run_name, tags=tags, resume_run_id=resume_run_id)
    ending = RunEnding(logger)  # FAILED on an error, KILLED on a signal: never left RUNNING
    with ending.recorded(), run_lock.holding(cfg.run_dir):  # one run per folder at a time
        check_config(cfg)
        run_dir = Path(cfg.run_dir)
        refuse_to_overwrite(run_dir, resuming=bool(cfg.train.resume_from))
        pl.seed_everything(cfg.train.seed, workers=True)
        weights_path, resumed = starting_points(cfg.train.checkpoint_path, resume, cfg.logger.tracking_uri)

        with ending.without_a_run():  # a refused dataset leaves no MLflow run behind, a finished one as it was
            refuse_finished_run(resumed, cfg.train.epochs)
            datamodule = instantiate(cfg.data)
        config = OmegaConf.to_container(cfg, resolve=True)
        if logger is not None:
            logger.log_hyperparams(config)  # the logger's first use: the MLflow run starts here
        tracking.log_dataset_inputs(logger, str(cfg.data.get("name", "unknown")), getattr(datamodule, "paths", {}))
        model = instantiate(cfg.model, num_classes=datamodule.num_classes)
        criterion = instantiate(cfg.criterion, num_classes=datamodule.num_classes)
        weight_tags = load_starting_weights(model, weights_path, datamodule.class_names)
        tracking.set_tags(logger, weight_tags)
        module = instantiate(cfg.module, model=model, criterion=criterion)
        resolved = OmegaConf.to_yaml(config)  # stored in every checkpoint and beside them
        built = build_callbacks(cfg.callbacks, resolved)
        interruption = Interruption()  # Ctrl-C, SIGTERM: the run ends KILLED, exits 130 / 143
        trainer = instantiate(cfg.trainer, callbacks=[*built.built.values(), interruption, *(callbacks or [])])
        trainer.loggers = [logger, *trainer.loggers] if logger is not None else trainer.loggers  # MLflow first
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        uri = cfg.logger.tracking_uri
        summarise = lambda: RunSummary.after_fit(trainer, built, logger, uri, weight_tags, overrides)  # noqa: E731
        with ending.during_fit(), interruption.exits_honestly(logger, summarise):
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(trainer, resumed))

        summary = summarise()
        if not trainer.is_global_zero:  # under DDP the first process writes, logs and prints for all
            return summary
        (run_dir / "config.yaml").write_text(resolved)
        uploads = [run_dir / "config.yaml", run_dir / "val_detections_best.json"]
        if cfg.logger.get("log_best_checkpoint") and summary.best_checkpoint:
            uploads.append(Path(summary.best_checkpoint))
        tracking.log_run_end(logger, summary.tags(), uploads)
        log_run_model(logger, summary, cfg.logger, in_sweep="sweep" in sweep_tags)  # runs:/<id>/model
        if cfg.train.resume_from:
            tracking.after_resumed_job(logger)
        print_summary(summary)
        return summary


@hydra_app("config")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    return summary.best_value  # what a Hydra sweeper (e.g. Optuna) optimises
