"""Early stopping (`train.early_stopping_*`) on the monitored metric: when it stops for a recorded sequence
of values (patience, min delta, losses, non-finite values), the trainer's min epochs, and what the summary and
MLflow say."""

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient
from pytorch_lightning.trainer.states import TrainerFn

from detr_ft.train import train
from detr_ft.training.guards.early_stopping import EarlyStopping
from tests.conftest import mlflow_store

NEVER = None


def stopping_epoch(
    callback: EarlyStopping, values: list[float], monitor: str = "val/mAP", min_epochs: int | None = None
) -> int | None:
    """Feed `values` (one per epoch) to the callback as a trainer would; the epoch after which it stopped."""
    trainer = SimpleNamespace(
        min_epochs=min_epochs,
        callback_metrics={},
        current_epoch=0,
        fast_dev_run=False,
        should_stop=False,
        sanity_checking=False,
        val_check_interval=1.0,
        check_val_every_n_epoch=1,
        state=SimpleNamespace(fn=TrainerFn.FITTING),
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision),
    )
    callback.setup(trainer, None, "fit")
    for epoch, value in enumerate(values):
        trainer.current_epoch, trainer.callback_metrics = epoch, {monitor: torch.tensor(value)}
        callback.on_validation_end(trainer, None)
        callback.on_train_epoch_end(trainer, None)  # one of the two checks, depending on the set-up
        if trainer.should_stop:
            return epoch
    return NEVER


SCORES = [0.1, 0.3, 0.2, 0.3, 0.25, 0.28, 0.9]  # best at epoch 1, then no improvement until epoch 6


@pytest.mark.parametrize(
    "patience, min_delta, expected",
    [
        (2, 0.0, 3),  # epochs 2 and 3 do not beat 0.3 (equal is no improvement)
        (3, 0.0, 4),
        (5, 0.0, NEVER),  # epoch 6 improves before the patience runs out
        (None, 0.0, NEVER),  # off
    ],
)
def test_it_stops_after_the_epoch_the_patience_runs_out(patience, min_delta, expected):
    callback = EarlyStopping("val/mAP", patience=patience, min_delta=min_delta)
    assert stopping_epoch(callback, SCORES) == expected


def test_an_improvement_smaller_than_min_delta_does_not_count():
    values = [0.30, 0.305, 0.31, 0.40]
    assert stopping_epoch(EarlyStopping("val/mAP", patience=2, min_delta=0.02), values) == 2
    assert stopping_epoch(EarlyStopping("val/mAP", patience=2, min_delta=0.0), values) == NEVER


def test_a_loss_is_better_lower_as_for_the_best_checkpoint():
    losses = [3.0, 2.5, 2.6, 2.7, 1.0]
    assert stopping_epoch(EarlyStopping("train_loss", patience=2), losses, "train_loss") == 3


def test_a_non_finite_metric_stops_at_once_and_says_so():
    callback = EarlyStopping("val/mAP", patience=5)
    assert stopping_epoch(callback, [0.2, float("nan")]) == 1
    assert "not finite" in callback.reason and "best 0.2000 at epoch 0" in callback.reason


def test_the_reason_gives_the_epoch_the_patience_and_the_best():
    callback = EarlyStopping("val/mAP", patience=2, min_delta=0.001)
    assert stopping_epoch(callback, SCORES, min_epochs=3) == 3
    assert callback.reason == (
        "early stop after epoch 3: val/mAP did not improve by more than 0.001 for 2 epoch(s) "
        "(patience 2, min epochs 3); best 0.3000 at epoch 1"
    )


# The scripted metric decides when the run stops, not what the model learns: one batch an epoch is enough.
ONE_BATCH = ("trainer.limit_train_batches=1", "trainer.limit_val_batches=1")


class ScriptedScore(pl.Callback):
    """Logs `test/score` from a recorded sequence at each validation: the metric the run monitors."""

    def __init__(self, values: list[float]):
        self.values = values

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("test/score", self.values[trainer.current_epoch])


def test_a_run_stops_early_and_the_summary_and_mlflow_say_why(tiny_cfg, tmp_path):
    uri = mlflow_store(tmp_path)
    cfg = tiny_cfg(
        "train.epochs=7",
        "train.monitor=test/score",
        "train.early_stopping_patience=2",
        "logger=mlflow",
        f"logger.tracking_uri={uri}",
        *ONE_BATCH,
    )
    summary = train(cfg, callbacks=[ScriptedScore(SCORES)])
    reason = "early stop after epoch 3: test/score did not improve by more than 0 for 2 epoch(s) (patience 2)"
    assert summary.stop_reason == reason + "; best 0.3000 at epoch 1"
    assert summary.best_epoch == 1 and summary.best_value == pytest.approx(0.3)
    assert torch.load(summary.last_checkpoint, weights_only=True)["epoch"] == 3  # epochs 4-6 never ran
    tags = MlflowClient(uri).get_run(summary.mlflow_run_id).data.tags
    assert tags["stop_reason"] == summary.stop_reason


def test_no_run_stops_before_its_min_epochs(tiny_cfg):
    cfg = tiny_cfg(
        "train.epochs=7",
        "train.monitor=test/score",
        "train.early_stopping_patience=2",
        "train.early_stopping_min_epochs=6",
        *ONE_BATCH,
    )
    summary = train(cfg, callbacks=[ScriptedScore(SCORES)])
    assert torch.load(summary.last_checkpoint, weights_only=True)["epoch"] == 5  # patience ran out at 3; 6 epochs ran
    assert summary.stop_reason == (
        "early stop after epoch 5: test/score did not improve by more than 0 for 4 epoch(s) "
        "(patience 2, min epochs 6); best 0.3000 at epoch 1"
    )


def test_a_run_without_early_stopping_says_it_ran_all_its_epochs(tiny_run):
    summary = tiny_run  # train.epochs=1, early stopping off
    assert summary.stop_reason == "max epochs: ran all 1 (train.epochs)"


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.early_stopping_patience", "0"),
        ("train.early_stopping_min_epochs", "-1"),
        ("train.early_stopping_min_delta", "-0.1"),
    ],
)
def test_a_bad_early_stopping_setting_is_refused_naming_the_key(tiny_cfg, key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        train(tiny_cfg(f"{key}={value}"))
