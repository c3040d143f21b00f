"""However a run ends before or around training, its MLflow run is never left RUNNING: a refused dataset makes
no run at all, Ctrl-C while the data is read makes none either, and Ctrl-C or SIGTERM once the run exists (here:
while the starting weights load) ends it KILLED with the reason, exiting 130 / 143 as a shell reports them."""

import os
import signal

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from detr_ft.train import train
from tests.conftest import mlflow_store
from tests.data.test_validation_at_training_start import _coco_config
from tests.data.tiny_coco import write_tiny_coco


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("detr_ft")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_a_refused_dataset_makes_no_mlflow_run(tiny_cfg, tmp_path):
    def negative_width(data):
        data["annotations"][2]["bbox"] = [8, 8, -24, 20]

    images, annotations = write_tiny_coco(tmp_path / "broken", negative_width)
    uri = mlflow_store(tmp_path)
    cfg = _coco_config(tiny_cfg, images, annotations)
    with open_dict(cfg):
        cfg.logger = tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}").logger
    with pytest.raises(Exception, match="negative width"):
        train(cfg)
    assert _runs(uri) == [], [(r.info.status, r.data.tags.get("status_error")) for r in _runs(uri)]


def _interrupt_with(what):
    def interrupt(*args, **kwargs):
        if what == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    return interrupt


def test_ctrl_c_while_the_data_is_read_leaves_no_run_behind(tiny_cfg, tmp_path, monkeypatch):
    uri = mlflow_store(tmp_path)
    monkeypatch.setattr("detr_ft.data.datamodule.read_split", _interrupt_with("SIGINT"))
    with pytest.raises(SystemExit) as exited:
        train(tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}"))
    assert exited.value.code == 130
    assert _runs(uri) == []


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_once_the_run_exists_ends_it_killed_with_the_reason(tiny_cfg, tmp_path, monkeypatch, name, code):
    uri = mlflow_store(tmp_path)
    monkeypatch.setattr("detr_ft.checkpoints.initial_weights.load_starting_weights", _interrupt_with(name))
    with pytest.raises(SystemExit) as exited:
        train(tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}"))
    assert exited.value.code == code
    (run,) = _runs(uri)
    assert run.info.status == "KILLED"
    assert f"interrupted by {name}" in run.data.tags["stop_reason"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run
