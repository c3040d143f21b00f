"""SIGTERM (what SLURM and Kubernetes send) and Ctrl-C (SIGINT) end a run honestly: exit code 143 / 130, the
MLflow run KILLED with the reason, the summary with its resume command printed, and a whole last.ckpt that a
resume continues to FINISHED."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, TINY_OVERRIDES, mlflow_store, run_app_with_mlflow


def _start(tmp_path, uri):
    args = [o for o in TINY_OVERRIDES if not o.startswith(("logger=", "train.epochs="))] + [
        f"data.cache_dir={tmp_path}/cache",
        f"logger.tracking_uri={uri}",
        "train.epochs=200",  # still running when the signal comes
        f"hydra.run.dir={tmp_path}/run",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "detr_ft", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell's background job inherits SIGINT ignored, and Python then installs no Ctrl-C handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_killed_with_its_reason_and_a_resumable_last_checkpoint(tmp_path, sent, code):
    uri = mlflow_store(tmp_path)
    last = tmp_path / "run/checkpoints/last.ckpt"
    process = _start(tmp_path, uri)
    deadline = time.monotonic() + 400
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.exists(), process.stderr.read()[-3000:].decode() if process.poll() is not None else "no epoch in 400 s"
    process.send_signal(sent)
    out, err = process.communicate(timeout=300)
    out, err = out.decode(), err.decode()

    assert process.returncode == code, err[-3000:]
    name = signal.Signals(sent).name
    assert f"interrupted by {name}" in out and "train.resume_from=" in out  # the summary says how to go on
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert run.info.status == "KILLED"
    assert f"interrupted by {name}" in run.data.tags["status_error"] == run.data.tags["stop_reason"]
    checkpoint = torch.load(last, weights_only=True)  # whole: written atomically at the last finished epoch
    if sent != signal.SIGTERM:
        return
    resumed, _ = run_app_with_mlflow(
        tmp_path,
        f"train.epochs={checkpoint['epoch'] + 2}",
        f"hydra.run.dir={tmp_path}/resumed",
        f"train.resume_from={tmp_path}/run",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
