"""The monitored metric (`train.monitor`): which direction is better, and the best value so far. The best
checkpoint, early stopping and the evaluation's best-epoch files all read a metric the same way."""

from dataclasses import dataclass


def monitor_mode(monitor: str) -> str:
    """ "min" for losses (lower is better), "max" for everything else (mAP, AR, ...)."""
    return "min" if "loss" in monitor else "max"


def is_better(value: float, best: float | None, monitor: str) -> bool:
    """Whether `value` beats `best` (None: nothing yet, so it does)."""
    if best is None:
        return True
    return value < best if monitor_mode(monitor) == "min" else value > best


@dataclass
class BestSoFar:
    """The best value of `monitor` seen so far and the epoch that had it; kept in checkpoints (plain types)."""

    monitor: str
    value: float | None = None
    epoch: int | None = None

    def offer(self, value: float, epoch: int) -> bool:
        """Record `value` of `epoch` when it is the new best; returns whether it was."""
        if not is_better(value, self.value, self.monitor):
            return False
        self.value, self.epoch = float(value), epoch
        return True

    def state_dict(self) -> dict:
        return {"best_value": self.value, "best_epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.epoch = state.get("best_value"), state.get("best_epoch")
