"""Which training images an epoch visits, in which order, and the random key of each draw, as a function of
the seed, the epoch and the image index only. A run resumed from a checkpoint therefore replays exactly the
draws of an uninterrupted one, whatever the number of DataLoader workers (a worker's own random state never
reaches a draw), and under DDP each rank takes its own share of the same epoch permutation.
"""

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DistributedSampler


class Draw(NamedTuple):
    """One item of an epoch: the dataset index and the seed its augmentation draws from."""

    index: int
    seed: int


def mixed_seed(*keys: int) -> int:
    """A 63-bit seed from integers (seed, epoch, index): neighbouring keys give unrelated seeds, so seed 1 at
    epoch 0 never replays seed 0 at epoch 1."""
    return int(np.random.SeedSequence([k % 2**63 for k in keys]).generate_state(1, np.uint64)[0] >> 1)


class EpochSampler(DistributedSampler):
    """Yields `Draw`s: a permutation of the dataset drawn from (seed, epoch), split across `num_replicas` ranks
    as torch's DistributedSampler does (padded by repeating the first indices so every rank gets as many).

    `seed=None` keeps torch's RandomSampler behaviour: a fresh seed from torch's global generator at every
    iteration (tools that build a loader outside a training run). Lightning calls `set_epoch` at each epoch
    start and leaves a DistributedSampler in place under DDP.
    """

    def __init__(self, dataset, seed: int | None, shuffle: bool = True, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed or 0)
        self.fixed_seed = seed

    def __iter__(self):
        seed = self.fixed_seed
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        size = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(size, generator=torch.Generator().manual_seed(mixed_seed(seed, self.epoch)))
        else:
            order = torch.arange(size)
        repeats = -(-self.total_size // max(size, 1))
        order = (order.tolist() * repeats)[: self.total_size]  # padded so every rank gets num_samples items
        for index in order[self.rank : self.total_size : self.num_replicas]:
            yield Draw(index, mixed_seed(seed, self.epoch, index))
