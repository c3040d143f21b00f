"""`train.resume_from` on a run that trained all its epochs stops at once, naming train.checkpoint_path= (a new
run from its weights) and train.epochs (train it for longer); its MLflow run stays FINISHED, untouched."""

import pytest
from mlflow.tracking import MlflowClient

from detr_ft.config.errors import ConfigError
from detr_ft.train import train
from tests.conftest import mlflow_store


def test_resuming_a_finished_run_is_refused_saying_what_to_use_instead(tiny_cfg, tmp_path):
    uri = mlflow_store(tmp_path)
    finished = train(tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}", "trainer.limit_train_batches=1"))
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert run.info.status == "FINISHED"
    with pytest.raises(ConfigError) as raised:
        train(tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}", f"train.resume_from={finished.run_dir}"))
    message = str(raised.value)
    assert "is a finished run (1 of train.epochs=1 epochs done)" in message, message
    assert f"train.checkpoint_path={finished.last_checkpoint}" in message and "raise train.epochs" in message
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert "status_error" not in client.get_run(run.info.run_id).data.tags
    assert not (tmp_path / "run2" / "checkpoints").exists()
