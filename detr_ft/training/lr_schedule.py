"""Learning rate of each optimizer group as a pure function of (step, epoch, unfreeze steps).

Being a function of the training position (not of a scheduler's hidden counter) makes resume exact:
the same step and epoch give the same rates whether or not the run was interrupted.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LearningRateSchedule:
    warmup_steps: int = 0  # every group ramps up linearly over the first steps of training
    lr_drop_epochs: tuple[int, ...] = ()  # each drop multiplies by lr_drop_factor from that epoch on
    lr_drop_factor: float = 0.1
    unfreeze_warmup_steps: int = 0  # a backbone stage ramps up over this many steps after it unfreezes

    def factor(self, step: int, epoch: int, unfreeze_step: int | None = None) -> float:
        """Multiplier of a group's base learning rate at optimizer step `step` in epoch `epoch`.

        `unfreeze_step`: the global step at which this group's parameters started training mid-run
        (None for groups that train from the start).
        """
        value = self.lr_drop_factor ** sum(epoch >= drop for drop in self.lr_drop_epochs)
        if self.warmup_steps > 0:
            value *= min(1.0, (step + 1) / self.warmup_steps)
        if unfreeze_step is not None and self.unfreeze_warmup_steps > 0:
            value *= min(1.0, max(0, step - unfreeze_step + 1) / self.unfreeze_warmup_steps)
        return value
