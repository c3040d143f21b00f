"""What a run should know before its first step: how many objects its train images hold against how many the
model can predict (its query count)."""

import logging

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class StartupReport(pl.Callback):
    """Logs the train images' object counts, and warns when some image holds more objects than queries."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        counts = trainer.datamodule.train_object_counts()
        num_queries = pl_module.model.num_queries
        log.info("train %s", counts.describe(num_queries))
        if warning := counts.warning(num_queries):
            log.warning(warning)
