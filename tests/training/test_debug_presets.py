"""debug= presets: each composes over the real config and runs with the tiny model."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from detr_ft.config.schema import config_dir
from detr_ft.train import train
from detr_ft.training.reports.results_png import read_epoch_means


def test_fast_runs_one_batch_each_and_logs_to_no_store(tiny_cfg):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["debug=fast"])  # the user's defaults: MLflow logger, sqlite store
    assert cfg.logger._target_.endswith("no_logger")
    assert (cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches, cfg.train.epochs) == (1, 1, 1)
    summary = train(tiny_cfg("debug=fast"))
    assert summary.best_checkpoint


def test_overfit_learns_one_batch_by_heart(tiny_cfg):
    quiet = ("callbacks.results_picture=null", "callbacks.prediction_pictures=null")  # 59 redraws: half the time
    cfg = tiny_cfg(
        "debug=overfit", "train.epochs=60", "train.learning_rate=1e-3", "trainer.check_val_every_n_epoch=60", *quiet
    )
    assert cfg.data.train_augmentation is False and cfg.train.ema_decay is None
    train(cfg)
    series = read_epoch_means(Path(cfg.run_dir) / "metrics.csv")
    losses = series["train_loss"]
    assert len(losses) == 60
    assert losses[59] < 0.3 * losses[0]
    assert series["matching/no_object_prob"][59] < series["matching/no_object_prob"][0]


def test_profile_writes_the_slowest_operators_to_the_run_folder(tiny_cfg):
    cfg = tiny_cfg("debug=profile", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1")
    train(cfg)
    report = Path(cfg.run_dir) / "fit-profile.txt"  # the README names it
    assert report.exists(), sorted(p.name for p in Path(cfg.run_dir).iterdir())
    assert "Self CPU" in report.read_text()
