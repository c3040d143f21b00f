"""The global random generators, reseeded before every training batch from (seed, epoch, batch, rank): dropout
then draws the same masks whether the run went straight through or was resumed from a checkpoint, whatever
drew from them in between (Lightning creates a resumed run's first DataLoader iterator at another moment than
an uninterrupted run's, and that draws from torch's generator). The training order and augmentation have
their own seeds (detr_ft.data.sampling)."""

import random

import numpy as np
import pytorch_lightning as pl
import torch

from detr_ft.data.sampling import mixed_seed


class BatchSeeding(pl.Callback):
    """Before each training batch: torch's (CPU and every GPU, no host sync), Python's and NumPy's generators
    from (seed, epoch, batch index, global rank); each rank draws its own dropout masks."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        seed = mixed_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
