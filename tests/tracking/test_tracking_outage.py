"""A tracking server that goes away mid-run does not stop training: checkpoints keep being written, the run
folder keeps every metric (metrics.csv), a warning says what was not logged and the summary says so."""

import csv
import logging

import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from detr_ft.tracking.logger import ResilientMLFlowLogger
from detr_ft.train import train
from tests.conftest import mlflow_store


class _Unreachable:
    """Stands in for the MLflow client once the server is gone: every call fails as a dropped connection."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError(f"{name}: [Errno 111] Connection refused")

        return fail


class ServerGoesAwayAtEpoch(pl.Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            mlflow_logger = next(lg for lg in trainer.loggers if isinstance(lg, ResilientMLFlowLogger))
            mlflow_logger._mlflow_client._client = _Unreachable()  # behind the guard, as a dropped server is


def test_training_outlives_the_tracking_server_and_says_what_was_not_logged(tiny_cfg, tmp_path, caplog):
    uri = mlflow_store(tmp_path)
    cfg = tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}", "train.epochs=3", "trainer.log_every_n_steps=1")
    with caplog.at_level(logging.WARNING, logger="detr_ft.tracking"):
        summary = train(cfg, [ServerGoesAwayAtEpoch(1)])

    assert summary.tracking_note.startswith("INCOMPLETE") and "metrics.csv" in summary.tracking_note
    assert any("stopped answering" in r.getMessage() and "NOT logged" in r.getMessage() for r in caplog.records)
    last = torch.load(summary.last_checkpoint, weights_only=True)
    assert last["epoch"] == 2  # checkpoints went on after the server left

    with open(f"{cfg.run_dir}/metrics.csv") as file:  # one row per metric: name, step, value
        local = [row for row in csv.DictReader(file) if row["name"] == "val/mAP"]
    assert len(local) == 3  # every epoch's validation, in the run folder
    recorded = MlflowClient(uri).get_metric_history(summary.mlflow_run_id, "val/mAP")
    assert len(recorded) == 1  # only epoch 0 reached MLflow
