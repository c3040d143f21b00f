"""Learning rate of each optimizer group as a pure function of (step, epoch, unfreeze steps, the run's steps).

Being a function of the training position (not of a scheduler's hidden counter) makes resume exact:
the same step and epoch give the same rates whether or not the run was interrupted.
"""

import math
from dataclasses import dataclass

SHAPES = ("step", "cosine")  # train.lr_schedule


@dataclass(frozen=True)
class LearningRateSchedule:
    warmup_steps: int = 0  # every group ramps up linearly over the first steps of training
    lr_drop_epochs: tuple[int, ...] = ()  # each drop multiplies by lr_drop_factor from that epoch on
    lr_drop_factor: float = 0.1
    unfreeze_warmup_steps: int = 0  # a backbone stage ramps up over this many steps after it unfreezes
    # step: constant but for the drops; cosine: also x (1 + cos(pi x step / total_steps)) / 2, from 1 at the first
    # step to 0 at the run's last (torch's CosineAnnealingLR with eta_min 0), the drops and warm-ups on top.
    lr_schedule: str = "step"

    def __post_init__(self):
        object.__setattr__(self, "lr_schedule", getattr(self.lr_schedule, "value", self.lr_schedule))  # the enum's
        if self.lr_schedule not in SHAPES:
            raise ValueError(f"train.lr_schedule must be one of {list(SHAPES)}, got {self.lr_schedule!r}")

    @property
    def needs_total_steps(self) -> bool:
        return self.lr_schedule == "cosine"

    def factor(
        self, step: int, epoch: int, unfreeze_step: int | None = None, total_steps: float | None = None
    ) -> float:
        """Multiplier of a group's base learning rate at optimizer step `step` in epoch `epoch`.

        `unfreeze_step`: the global step at which this group's parameters started training mid-run
        (None for groups that train from the start). `total_steps`: the run's optimizer steps (cosine only).
        """
        value = self.lr_drop_factor ** sum(epoch >= drop for drop in self.lr_drop_epochs)
        if self.needs_total_steps:
            if not total_steps or not math.isfinite(total_steps) or total_steps < 1:
                raise ValueError(f"train.lr_schedule=cosine needs a run of known length (train.epochs): {total_steps}")
            value *= 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        if self.warmup_steps > 0:
            value *= min(1.0, (step + 1) / self.warmup_steps)
        if unfreeze_step is not None and self.unfreeze_warmup_steps > 0:
            value *= min(1.0, max(0, step - unfreeze_step + 1) / self.unfreeze_warmup_steps)
        return value
