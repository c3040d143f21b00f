"""A run killed with SIGKILL is closed KILLED by the next job that opens the store, and `train.resume_from`
continues the same MLflow run (its metric history goes on from the checkpoint) until it ends FINISHED."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from detr_ft.tracking import store
from tests.conftest import REPO, TINY_OVERRIDES, mlflow_store, run_app_with_mlflow


@pytest.mark.slow
def test_a_killed_run_is_closed_killed_and_its_resume_continues_the_same_run(tmp_path):
    uri = mlflow_store(tmp_path)
    marker = tmp_path / "paused"
    common = [o for o in TINY_OVERRIDES if not o.startswith("logger=")] + [
        f"data.cache_dir={tmp_path}/cache",
        f"logger.tracking_uri={uri}",
        "train.epochs=3",
    ]
    killed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "detr_ft",
            *common,
            f"hydra.run.dir={tmp_path}/first",
            "+callbacks.pause._target_=tests.training.recorders.PauseAtEpoch",
            "+callbacks.pause.epoch=2",
            f"+callbacks.pause.marker={marker}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the pause callback lives in the tests
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), killed.stderr.read()[-3000:] if killed.poll() is not None else "no pause in 300 s"
    killed.send_signal(signal.SIGKILL)  # epochs 0 and 1 are done and in last.ckpt
    killed.wait()

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert run.info.status == "RUNNING"  # nobody closed it: the process died
    last = torch.load(tmp_path / "first/checkpoints/last.ckpt", weights_only=True)
    assert last["detr_ft"]["mlflow_run"] == {"run_id": run.info.run_id, "tracking_uri": uri}

    store.prepare_store(uri, "detr_ft")  # what the next job (or resume) does before anything else
    assert client.get_run(run.info.run_id).info.status == "KILLED"

    resumed, _ = run_app_with_mlflow(
        tmp_path, "train.epochs=3", f"hydra.run.dir={tmp_path}/resumed", f"train.resume_from={tmp_path}/first"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run.info.run_id in resumed.stdout
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # no second run
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FINISHED" and "status_error" not in after.data.tags
    epochs = sorted(int(m.value) for m in client.get_metric_history(run.info.run_id, "epoch"))
    assert sorted(set(epochs)) == [0, 1, 2]  # history goes on from the checkpoint's epoch
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/mAP")]
    assert len(steps) == len(set(steps)) == 3  # epochs 0-1 from the killed process, 2 from the resume
    assert "run_dir" in after.data.tags["resume_changed"]
