"""A diverged run stops at once and says what to change (step, epoch, learning rates, last good checkpoint,
`train.learning_rate` / `train.gradient_clip_val` / `train.precision`); the MLflow run ends FAILED with that
reason; the checkpoint on disk stays the last good one; NaN boxes never reach GIoU's degenerate-box check."""

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from detr_ft.train import train
from detr_ft.training.guards.divergence import Diverged
from tests.conftest import run_app_with_mlflow

WHAT_TO_CHANGE = ("train.learning_rate", "train.gradient_clip_val", "train.precision")


class StepsTaken(pl.Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1


def test_a_huge_learning_rate_stops_at_the_first_non_finite_value_saying_what_to_change(tiny_cfg):
    steps = StepsTaken()
    with pytest.raises(FloatingPointError) as raised:  # not generalized_box_iou's ValueError on NaN boxes
        train(tiny_cfg("train.learning_rate=1e36", "train.epochs=2"), callbacks=[steps])
    message = str(raised.value)
    assert message.startswith("training diverged: "), message
    assert f"at step {steps.steps} of epoch 0" in message  # the step that failed, before its optimizer update
    assert "head 1e+36" in message and "Last good checkpoint: none yet" in message
    assert all(key in message for key in WHAT_TO_CHANGE), message


def test_a_non_finite_loss_with_finite_predictions_stops_before_its_backward_pass(tiny_cfg):
    """The loss's own check: an infinite loss weight makes the loss inf while every prediction stays finite."""
    steps = StepsTaken()
    with pytest.raises(Diverged) as raised:
        train(tiny_cfg("criterion.weights.loss_giou=inf"), callbacks=[steps])
    message = str(raised.value)
    assert message.startswith("training diverged: the loss is inf, in training at step 0 of epoch 0"), message
    assert steps.steps == 0 and all(key in message for key in WHAT_TO_CHANGE), message


class LearningRateExplodes(pl.Callback):
    """From epoch 1 on, every group's base learning rate is 1e36 (epoch 0 trains normally)."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            for group in trainer.optimizers[0].param_groups:
                group["base_lr"] = 1e36


def test_divergence_after_a_good_epoch_names_last_ckpt_which_stays_the_good_one(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=3", "finetune_strategy=full")
    with pytest.raises(FloatingPointError, match="of epoch 1") as raised:
        train(cfg, callbacks=[LearningRateExplodes()])
    last = tmp_path / "run1" / "checkpoints" / "last.ckpt"
    assert f"Last good checkpoint: {last}" in str(raised.value)
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point())


def test_the_diverged_run_is_failed_in_mlflow_with_the_reason(tmp_path):
    result, uri = run_app_with_mlflow(tmp_path, "train.learning_rate=1e36")
    assert result.returncode != 0
    assert "training diverged" in result.stderr and "generalized_box_iou" not in result.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert run.info.status == "FAILED"
    reason = run.data.tags["status_error"]
    assert "training diverged" in reason and all(key in reason for key in WHAT_TO_CHANGE), reason
