"""train.accumulate_grad_batches: Lightning steps the optimizer every N batches; the effective batch is logged."""

from pathlib import Path

import pytorch_lightning as pl

from detr_ft.train import train
from detr_ft.training.reports.results_png import read_epoch_means


class StepCount(pl.Callback):
    def on_fit_end(self, trainer, pl_module):
        self.steps = trainer.global_step


def test_accumulating_two_batches_halves_the_optimizer_steps(tiny_cfg):
    cfg = tiny_cfg("train.accumulate_grad_batches=2")  # 16 images in batches of 4: 4 batches, 2 steps
    counter = StepCount()
    train(cfg, callbacks=[counter])
    assert counter.steps == 2
    series = read_epoch_means(Path(cfg.run_dir) / "metrics.csv")
    assert series["train/effective_batch_size"] == {0: 8.0}
