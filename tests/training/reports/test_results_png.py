"""results.png's data: per-epoch means read from metrics.csv, the panels' series, unfreeze and best epochs."""

from pathlib import Path

import pytest

from detr_ft.training.reports.results_png import draw_results, read_epoch_means, results_data

ROWS = [
    ("train/loss_ce", 1, 4.0),
    ("lr/head", 1, 1e-4),
    ("epoch", 1, 0),
    ("train/loss_ce", 2, 2.0),
    ("epoch", 2, 0),
    ("val/mAP", 2, 0.1),
    ("epoch", 2, 0),
    ("backbone/trainable_stages", 2, 0),
    ("train_loss", 2, 9.0),
    ("matching/no_object_prob", 2, 0.8),
    ("epoch", 2, 0),
    ("train/loss_ce", 3, 1.0),
    ("lr/head", 3, 2e-4),
    ("lr/layer4", 3, 1e-5),
    ("epoch", 3, 1),
    ("val/mAP", 4, 0.3),
    ("epoch", 4, 1),
    ("backbone/trainable_stages", 4, 1),
    ("train_loss", 4, 5.0),
    ("epoch", 4, 1),
    ("val/mAP", 6, 0.2),
    ("epoch", 6, 2),
    ("backbone/trainable_stages", 6, 3),
    ("epoch", 6, 2),
]


def write_csv(path: Path) -> Path:
    path.write_text("name,step,value\n" + "".join(f"{n},{s},{v}\n" for n, s, v in ROWS))
    return path


def test_rows_belong_to_the_epoch_their_logging_call_ends_with(tmp_path):
    series = read_epoch_means(write_csv(tmp_path / "metrics.csv"))
    assert series["train/loss_ce"] == {0: pytest.approx(3.0), 1: pytest.approx(1.0)}  # step values averaged
    assert series["val/mAP"] == {0: 0.1, 1: 0.3, 2: 0.2}
    assert series["lr/layer4"] == {1: 1e-5}
    assert "epoch" not in series


@pytest.fixture
def series(tmp_path):
    return read_epoch_means(write_csv(tmp_path / "metrics.csv"))


def test_panels_hold_their_series_and_the_marks(series):
    data = results_data(series, monitor="val/mAP")
    assert set(data.losses) == {"train_loss", "train/loss_ce"}
    assert set(data.validation) == {"val/mAP"}
    assert set(data.learning_rates) == {"lr/head", "lr/layer4"}
    assert data.health == {"matching/no_object_prob": {0: 0.8}}
    assert data.unfreeze_epochs == [1, 2]  # the stage count grew at the start of epochs 1 and 2
    assert data.best_epoch == 1


def test_a_loss_monitor_picks_the_lowest_epoch(series):
    assert results_data(series, monitor="train_loss").best_epoch == 1
    assert results_data({"train_loss": {0: 2.0, 1: 3.0}}, monitor="train_loss").best_epoch == 0


def test_the_picture_is_written_also_before_anything_was_validated(tmp_path):
    path = draw_results(results_data({}), tmp_path / "sub" / "results.png")
    assert path.stat().st_size > 0


def test_a_training_run_draws_the_picture_and_logs_matching_health(tiny_cfg):
    from detr_ft.train import train

    cfg = tiny_cfg("train.epochs=2", pictures=True)
    train(cfg)
    run_dir = Path(cfg.run_dir)
    assert (run_dir / "results.png").stat().st_size > 0
    assert (run_dir / "dataset_overview.png").stat().st_size > 0  # the DatasetOverview node, at fit start
    data = results_data(read_epoch_means(run_dir / "metrics.csv"))
    assert set(data.health["matching/no_object_prob"]) == {0, 1}
    assert set(data.health["matching/instability"]) == {1}  # from the second epoch
    assert set(data.validation["val/mAP"]) == {0, 1}
