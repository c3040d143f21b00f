"""The free-space check asks for what a run writes: the estimate of one checkpoint is within 10% of detr_tiny's
real last.ckpt, with a frozen backbone (no optimizer state for it) and with a backbone that trains."""

from pathlib import Path

import pytest
import pytorch_lightning as pl

from detr_ft.train import train
from detr_ft.training.guards.run_folder import checkpoint_bytes
from detr_ft.training.loop.finetuning import BackboneUnfreezing


class SizeAtSetup(pl.Callback):
    def __init__(self):
        self.estimate = None

    def on_train_start(self, trainer, pl_module):
        unfreezing = next(c for c in trainer.callbacks if isinstance(c, BackboneUnfreezing))
        self.estimate = checkpoint_bytes(pl_module.model, list(unfreezing.ran.start_epochs))


@pytest.mark.parametrize("strategy", ["frozen", "full"])
def test_the_checkpoint_size_estimate_matches_the_file_written(tiny_cfg, strategy):
    size = SizeAtSetup()
    summary = train(tiny_cfg(f"finetune_strategy={strategy}"), callbacks=[size])
    written = Path(summary.last_checkpoint).stat().st_size
    assert abs(size.estimate - written) / written < 0.10, (size.estimate, written)
