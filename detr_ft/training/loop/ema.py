"""An exponential moving average (EMA) of the model's weights (`train.ema_decay`, `train.ema_warmup_steps`),
and the Lightning callback that keeps it, validates with it and stores it in every checkpoint.

After optimizer step t: `ema = d_t * ema + (1 - d_t) * weights`, with the decay warmed up as
`d_t = decay * (1 - exp(-t / warmup_steps))` (as Ultralytics and RF-DETR do): early steps, where the weights
still move fast from their starting point, are not averaged against the stale start. `warmup_steps=0` uses
`decay` from the first step.

Only parameters that train are averaged. A parameter gets its average the first time it trains, starting
from its value then: a backbone stage frozen until a progressive unfreeze has not moved, so its average
starts exactly where its weights are. Frozen parameters and buffers (the backbone's fixed BatchNorm
statistics) have no copy at all: the averaged model uses the raw model's values for them.
"""

import logging
import math

import pytorch_lightning as pl
import torch

from detr_ft.checkpoints.checkpoint_file import ema_of, put_ema
from detr_ft.checkpoints.weight_layouts import CheckpointError

log = logging.getLogger(__name__)


class WeightAverage:
    """The EMA of `model`'s trainable parameters: `update()` after each optimizer step, `averaged_state()`
    for the averaged model's full state dict, `swap()` (twice) to run the model with its averages for a while."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup_steps: float = 0.0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be between 0 and 1 (e.g. 0.993), or null for no EMA; got {decay}")
        if warmup_steps < 0:
            raise ValueError(f"train.ema_warmup_steps must be >= 0 (0: no warm-up), got {warmup_steps}")
        self.model = model
        self.decay = float(decay)
        self.warmup_steps = float(warmup_steps)
        self.updates = 0  # optimizer steps averaged so far: the t of the warm-up
        self.averages: dict[str, torch.Tensor] = {}  # parameter name -> its average; trained ones only
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._trainable: tuple[str, ...] | None = None

    def decay_at(self, updates: int) -> float:
        """d_t for the t-th update (t counts from 1)."""
        if self.warmup_steps == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-updates / self.warmup_steps))

    def track_trainable(self) -> None:
        """Start averaging parameters that train now and had no average yet (from their current value). Call
        before the step that first changes them: at fit start and whenever stages may have been unfrozen."""
        trainable = tuple(name for name, p in self.model.named_parameters() if p.requires_grad)
        if trainable == self._trainable:
            return
        parameters = dict(self.model.named_parameters())
        for name in trainable:
            if name not in self.averages:
                self.averages[name] = parameters[name].detach().clone()
        self._trainable = trainable
        # Frozen parameters are left out of the update: not multiplied, not copied.
        self._pairs = ([self.averages[n] for n in trainable], [parameters[n].detach() for n in trainable])

    @torch.no_grad()
    def update(self) -> float:
        """Average in the current weights (after an optimizer step); returns the decay used."""
        self.track_trainable()  # normally a no-op: the callback tracks before each batch's step
        self.updates += 1
        decay = self.decay_at(self.updates)
        averages, weights = self._pairs
        if averages:
            torch._foreach_lerp_(averages, weights, 1.0 - decay)  # ema += (1 - d) * (w - ema)
        return decay

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict with each averaged parameter replaced by its average (detached)."""
        state = {k: v.detach() for k, v in self.model.state_dict().items()}
        return state | self.averages

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's values of the averaged parameters with their averages (twice = undone)."""
        parameters = dict(self.model.named_parameters())
        for name, average in self.averages.items():
            raw = parameters[name].detach().clone()
            parameters[name].copy_(average)
            average.copy_(raw)

    def restore(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore the averages and the step count of a checkpoint (the decay settings stay this run's)."""
        parameters = dict(self.model.named_parameters())
        unknown = sorted(set(weights) - set(parameters))
        if unknown:
            raise CheckpointError(f"the checkpoint's EMA weights name parameters this model lacks: {unknown[:5]}")
        self.updates = updates
        self.averages = {k: v.detach().clone().to(parameters[k].device) for k, v in weights.items()}
        self._trainable = None  # re-pair with the model's parameters at the next update


class ExponentialMovingAverage(pl.Callback):
    """Keeps a WeightAverage of the LightningModule's `model` (`decay=None`: does nothing), validates with the
    averages, and stores them in every checkpoint beside the raw weights (which the checkpoint's `state_dict`
    keeps, so a resume continues training the raw weights and restores the averages exactly).

    The averages are swapped in for the whole validation loop, so val/* metrics, the best checkpoint's choice
    and the best epoch's detections are the EMA model's; they are swapped out before any checkpoint is written
    (Lightning runs checkpoint callbacks after the others).
    """

    def __init__(self, decay: float | None, warmup_steps: float = 0.0):
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.average: WeightAverage | None = None
        self._restored: tuple[dict, int] | None = None  # (averages, updates) of a resumed checkpoint
        self._last_step: int | None = None
        self._swapped = False

    @property
    def enabled(self) -> bool:
        return self.decay is not None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.enabled:
            self.average = WeightAverage(pl_module.model, self.decay, self.warmup_steps)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        saved = ema_of(checkpoint)
        if not self.enabled:
            if saved is not None:
                log.warning("the resumed checkpoint holds EMA weights, but train.ema_decay is null: they are dropped")
            return
        if saved is None:
            log.warning("the resumed checkpoint has no EMA weights: the average starts from its raw weights")
            return
        self._restored = saved  # loaded at fit start, once the model is on its device

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.average is None:
            return
        if self._restored is not None:
            self.average.restore(*self._restored)
            self._restored = None
        self._last_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.average is not None:
            self.average.track_trainable()  # after the epoch-start unfreezing, before this batch's step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # One update per optimizer step (not per batch: gradient accumulation steps every few batches).
        if self.average is None or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        decay = self.average.update()
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            pl_module.log("ema/decay", decay, on_step=True, on_epoch=False)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.average is not None and not self._swapped:
            self.average.swap()
            self._swapped = True

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._swapped:
            self.average.swap()
            self._swapped = False

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_validation_end(trainer, pl_module)  # never leave the raw weights swapped out

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self.average is None:
            return
        if self._swapped:  # a checkpoint written mid-validation: its state_dict holds the averages
            raise RuntimeError("a checkpoint was written while the EMA weights were swapped in")
        average = self.average
        put_ema(checkpoint, average.averages, average.updates, average.decay, average.warmup_steps)
