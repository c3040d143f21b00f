"""Early stopping in a `--multirun` sweep ends the job that ran out of patience, not the sweep's other jobs."""

import mlflow
import pytest

from tests.conftest import run_app_with_mlflow, sweep_runs


@pytest.mark.slow
def test_early_stopping_ends_one_job_of_a_sweep_and_the_other_runs_all_its_epochs(tmp_path):
    # A min delta no loss can beat: with patience 1 the job stops after epoch 1; without patience it runs on.
    result, tracking_uri = run_app_with_mlflow(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/multirun",
        "train.epochs=3",
        "train.monitor=train_loss",
        "train.early_stopping_min_delta=1000",
        "train.early_stopping_patience=1,null",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(tracking_uri)
    _, runs = sweep_runs(tracking_uri)  # the jobs, not the sweep's parent
    assert len(runs) == 2
    by_patience = {r.data.params["train/early_stopping_patience"]: r for r in runs}
    stopped, full = by_patience["1"], by_patience["None"]
    assert stopped.data.tags["stop_reason"].startswith("early stop after epoch 1: train_loss did not improve by more")
    assert full.data.tags["stop_reason"] == "max epochs: ran all 3 (train.epochs)"
    epochs = {name: len(client.get_metric_history(run.info.run_id, "train_loss")) for name, run in by_patience.items()}
    assert epochs == {"1": 2, "None": 3}  # one value of the epoch-mean loss per epoch that ran
    assert {r.info.status for r in runs} == {"FINISHED"}
