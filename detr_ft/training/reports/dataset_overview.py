"""`<run_dir>/dataset_overview.png` for the run's data (detr_ft/data/overview.py), written once when the fit
starts and uploaded to MLflow, so the run keeps a picture of what it trained on."""

from pathlib import Path

import pytorch_lightning as pl

from detr_ft.data.overview import draw_overview, overview_data
from detr_ft.tracking.recording import log_artifact


class DatasetOverview(pl.Callback):
    def __init__(self, path: str):
        self.path = Path(path)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        splits = getattr(trainer.datamodule, "paths", None)
        if not trainer.is_global_zero or not splits or self.path.exists():  # a resumed run keeps its picture
            return
        draw_overview(overview_data(splits), self.path, pl_module.model.num_queries)
        log_artifact(trainer.loggers, self.path)
