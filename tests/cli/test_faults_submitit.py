"""The README's cluster path, exercised on every change: a 2-job sweep through Hydra's submitit launcher
(`hydra/launcher=submitit_local`, the same launcher as submitit_slurm without the scheduler) is one parent MLflow
run with both jobs FINISHED under it."""

import pytest

from tests.conftest import run_app_with_mlflow, sweep_runs


@pytest.mark.slow
def test_a_2_job_sweep_through_submitit_local_is_one_parent_run_with_2_finished_jobs(tmp_path):
    result, tracking_uri = run_app_with_mlflow(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/multirun",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=30",
        "train.learning_rate=1e-4,2e-4",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (parent,), runs = sweep_runs(tracking_uri)
    assert parent.info.status == "FINISHED"
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {r.data.params["train/learning_rate"] for r in runs} == {"0.0001", "0.0002"}
    assert len(list((tmp_path / "multirun").glob("*/checkpoints/last.ckpt"))) == 2  # each job in its own folder
