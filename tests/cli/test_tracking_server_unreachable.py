"""A tracking server that does not answer stops `python -m detr_ft` at once, before any data is read, with a
message naming the URI, the cause and the fixes (MLflow's own client would retry for minutes)."""

from tests.conftest import run_app_with_mlflow


def test_an_unreachable_tracking_server_stops_the_run_before_any_data_is_read(tmp_path):
    result, _ = run_app_with_mlflow(tmp_path, "logger.tracking_uri=http://127.0.0.1:9", "hydra.run.dir=run")
    assert result.returncode != 0
    message = result.stderr
    assert "http://127.0.0.1:9 is not reachable" in message and "Connection refused" in message
    for fix in ("mlflow server", "logger.tracking_uri=sqlite:///mlflow.db", "logger=none"):
        assert fix in message, fix
    assert not (tmp_path / "cache").exists()  # the synthetic data was never generated nor read
    assert not (tmp_path / "run" / "checkpoints").exists()
