"""`train.lr_schedule=cosine`: the rate follows half a cosine over the run's optimizer steps, with the drops and
warm-ups on top, as a pure function of the step (so a resume lands on the same rates); a bad value is refused."""

import math

import pytest
import pytorch_lightning as pl

from detr_ft.train import train
from detr_ft.training.loop.lr_schedule import LearningRateSchedule


def test_cosine_falls_from_one_at_the_first_step_to_zero_at_the_last():
    schedule = LearningRateSchedule(lr_schedule="cosine")
    factors = [schedule.factor(step, 0, total_steps=8) for step in range(9)]
    assert factors[0] == 1.0 and factors[4] == pytest.approx(0.5) and factors[8] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    assert schedule.factor(3, 0, total_steps=8) == pytest.approx((1 + math.cos(math.pi * 3 / 8)) / 2)


def test_cosine_composes_with_drops_warmup_and_unfreeze_warmup():
    schedule = LearningRateSchedule(
        warmup_steps=4, lr_drop_epochs=(1,), lr_drop_factor=0.1, unfreeze_warmup_steps=2, lr_schedule="cosine"
    )
    cosine = (1 + math.cos(math.pi * 2 / 10)) / 2
    assert schedule.factor(2, 1, unfreeze_step=2, total_steps=10) == pytest.approx(0.1 * cosine * 0.75 * 0.5)
    again = LearningRateSchedule(**{**schedule.__dict__})  # a resumed run rebuilds it: the same rate
    assert again.factor(2, 1, 2, 10) == schedule.factor(2, 1, 2, 10)


def test_the_step_schedule_ignores_the_step_count():
    schedule = LearningRateSchedule(lr_drop_epochs=(2,))
    assert schedule.factor(5, 1) == schedule.factor(5, 1, total_steps=6) == 1.0


@pytest.mark.parametrize("total", [None, 0, float("inf")])
def test_cosine_needs_a_run_of_known_length(total):
    with pytest.raises(ValueError, match="train.lr_schedule=cosine needs a run of known length"):
        LearningRateSchedule(lr_schedule="cosine").factor(0, 0, total_steps=total)


def test_an_unknown_schedule_is_refused_naming_the_key_and_the_valid_values(tiny_cfg):
    with pytest.raises(Exception, match="train.lr_schedule=linear") as error:
        tiny_cfg("train.lr_schedule=linear")  # while the config is composed: before any data is read
    assert "Invalid value 'linear', expected one of [step, cosine]" in str(error.value.__cause__)
    with pytest.raises(ValueError, match=r"train.lr_schedule must be one of \['step', 'cosine'\], got 'linear'"):
        LearningRateSchedule(lr_schedule="linear")  # the schedule built by hand


class HeadRates(pl.Callback):
    def __init__(self):
        self.rates: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rates.append(next(g["lr"] for g in trainer.optimizers[0].param_groups if g["name"] == "head"))


def test_a_cosine_run_sets_each_steps_rate_from_the_runs_step_count(tiny_cfg):
    """2 epochs of 4 steps: the head's rate at step t is lr x (1 + cos(pi t / 8)) / 2."""
    rates = HeadRates()
    train(tiny_cfg("train.lr_schedule=cosine", "train.epochs=2", "train.learning_rate=1e-3"), callbacks=[rates])
    assert rates.rates == pytest.approx([1e-3 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(8)])
