"""What a run leaves for per-class results: val/AP/<class> metrics, the per-class table per epoch, the best
epoch's table, confusion matrix and PR-curve pictures in the run folder and in MLflow, and the summary."""

import csv

import pytest
from mlflow.tracking import MlflowClient

from detr_ft.train import train
from tests.conftest import compose_config, mlflow_store

NAMES = ["circle", "square", "triangle", "cross"]  # data=synthetic's classes


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache):
    root = tmp_path_factory.mktemp("evaluation_artifacts")
    uri = mlflow_store(root)
    cfg = compose_config(["logger=mlflow", f"logger.tracking_uri={uri}", "train.epochs=2"], root / "run", data_cache)
    return train(cfg), MlflowClient(uri), root / "run"


def test_per_class_ap_is_logged_each_epoch_and_tabled(run):
    summary, client, _ = run
    for name in NAMES:
        assert len(client.get_metric_history(summary.mlflow_run_id, f"val/AP/{name}")) == 2, name
        assert len(client.get_metric_history(summary.mlflow_run_id, f"val/AP50/{name}")) == 2, name
    table = list(csv.DictReader((run[2] / "evaluation" / "per_class_ap.csv").open()))
    assert [(r["epoch"], r["class_name"]) for r in table] == [(e, n) for e in ("0", "1") for n in NAMES]
    final = summary.final_metrics
    for row in table[4:]:  # the last epoch's rows are the last val/AP/<class> values
        assert float(row["AP"]) == pytest.approx(final[f"val/AP/{row['class_name']}"], abs=1e-6)


def test_the_best_epochs_files_are_in_the_run_folder_and_in_mlflow(run, capsys):
    summary, client, folder = run
    names = {"per_class_ap.csv", "per_class_ap_best.csv", "confusion_matrix_best.csv", "confusion_matrix_best.png",
             "pr_curve_best.png"}  # fmt: skip
    for name in names:
        assert (folder / "evaluation" / name).stat().st_size > 0, name
    logged = {item.path for item in client.list_artifacts(summary.mlflow_run_id, "evaluation")}
    assert logged == {f"evaluation/{name}" for name in names}
    best = list(csv.DictReader((folder / "evaluation" / "per_class_ap_best.csv").open()))
    assert {r["epoch"] for r in best} == {str(summary.best_epoch)}  # monitor val/mAP: the checkpoint's best epoch
    matrix = list(csv.reader((folder / "evaluation" / "confusion_matrix_best.csv").open()))
    assert matrix[0] == ["true \\ detected", *NAMES, "background"]
    objects = sum(int(r["objects"]) for r in best)
    assert sum(int(v) for row in matrix[1:-1] for v in row[1:]) == objects  # every object counted once


def test_the_summary_lists_the_best_epochs_classes(run, capsys):
    from detr_ft.training.reports.summary import print_summary

    summary = run[0]
    assert summary.per_class_epoch == summary.best_epoch
    assert [row["class_name"] for row in summary.per_class] == NAMES
    print_summary(summary)
    out = capsys.readouterr().out
    assert f"per-class AP at epoch {summary.best_epoch}, best first:" in out
    for name in NAMES:
        assert f"  {name}" in out
