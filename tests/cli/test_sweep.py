"""A real `--multirun` sweep: each job one MLflow run of one sweep, a failed job marked FAILED without
stopping the others, and `detr_ft.compare` (function and command) listing them in metric order."""

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from detr_ft.compare import compare
from detr_ft.config import config_dir
from tests.conftest import run_app_with_mlflow, run_cli


@pytest.mark.slow
def test_a_2x2_multirun_leaves_four_runs_of_one_sweep_and_compare_ranks_them(tmp_path):
    result, tracking_uri = run_app_with_mlflow(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/multirun",
        "train.learning_rate=1e-4,5e-4",
        "finetune_strategy=frozen,full",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("detr_ft")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    combos = {(r.data.params["train/learning_rate"], r.data.tags["strategy"]) for r in runs}
    assert combos == {("0.0001", "frozen"), ("0.0001", "full"), ("0.0005", "frozen"), ("0.0005", "full")}
    names = {r.info.run_name: (r.data.params["train/learning_rate"], r.data.tags["strategy"]) for r in runs}
    assert len(names) == 4, "every job of the sweep needs its own name"
    for name, (lr, strategy) in names.items():  # each name says what its job swept
        assert f"lr{float(lr):g}" in name and strategy in name, (name, lr, strategy)

    rows, plot = compare(sweep=runs[0].data.tags["sweep"], tracking_uri=tracking_uri, output=str(tmp_path / "cmp"))
    values = [row["best"] for row in rows if row.get("best") is not None]
    assert len(rows) == 4 and values == sorted(values, reverse=True)
    assert plot.is_file()

    # The command line spells the store as the main app does (logger.*).
    shown = run_cli(
        [
            "-m",
            "detr_ft.compare",
            f"sweep='{runs[0].data.tags['sweep']}'",
            f"logger.tracking_uri={tracking_uri}",
            "logger.experiment_name=detr_ft",
            f"output={tmp_path / 'cmp_cli'}",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    table = shown.stdout.splitlines()
    assert [line.split()[0] for line in table[2:6]] == [row["name"][:28] for row in rows]  # best first
    assert (tmp_path / "cmp_cli" / "val_mAP.png").is_file()


@pytest.mark.slow
def test_a_failed_job_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    # precision=nonsense passes the schema (a string) but the recipe rejects it: that job fails, the other finishes.
    result, tracking_uri = run_app_with_mlflow(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/multirun",
        "train.gradient_clip_val=0.1",
        "train.precision=32,nonsense",
        multirun=True,
    )
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("detr_ft")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    by_status = {r.info.status: r for r in runs}
    assert sorted(by_status) == ["FAILED", "FINISHED"], result.stderr[-3000:]
    assert "nonsense" in by_status["FAILED"].data.tags["status_error"]


def test_optuna_sweeper_experiment_composes():
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=optuna_lr"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert set(cfg.hydra.sweeper.params) == {"train.learning_rate", "train.backbone_learning_rate"}
