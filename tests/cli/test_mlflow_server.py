"""A training run logs to a real MLflow tracking server over HTTP (started on 127.0.0.1, stopped after)."""

import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from detr_ft.train import train


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "art"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("mlflow server did not start within 90 s") from None
                time.sleep(0.5)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_a_training_run_logs_to_a_tracking_server(tiny_cfg, mlflow_server):
    logger = ("logger=mlflow", f"logger.tracking_uri={mlflow_server}", "logger.experiment_name=remote")
    summary = train(tiny_cfg(*logger, pictures=True))
    client = mlflow.tracking.MlflowClient(mlflow_server)
    run = client.get_run(summary.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert "val/mAP" in run.data.metrics and run.data.params["train/epochs"] == "1"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "predictions")]
