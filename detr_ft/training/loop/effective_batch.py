"""How many images one optimizer step learns from: the loader's batch size x `train.accumulate_grad_batches` x the
processes (DDP), logged once at the start (metric `train/effective_batch_size`), since the learning rate that
suits a run depends on it."""

import logging

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class EffectiveBatchSize(pl.Callback):
    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        size = self.batch_size * trainer.accumulate_grad_batches * trainer.world_size
        if trainer.is_global_zero:
            log.info(
                "effective batch size %d (batch_size %d x accumulate_grad_batches %d x %d process(es))",
                size,
                self.batch_size,
                trainer.accumulate_grad_batches,
                trainer.world_size,
            )
        for logger in trainer.loggers:
            logger.log_metrics({"train/effective_batch_size": float(size)}, step=0)
