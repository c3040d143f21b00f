"""Ctrl-C (SIGINT) and SIGTERM (what SLURM and Kubernetes send before they kill a job) end a run honestly: the
MLflow run KILLED with the reason, the summary with its resume command printed, and the shell's exit code for
the signal (130, 143), so a scheduler or a script sees that the run did not finish.

Lightning does the catching: on SIGTERM its signal connector sets `trainer.received_sigterm` and the loops stop
after the current batch by raising `SIGTERMException` (a SystemExit whose code is 0); on Ctrl-C it catches the
KeyboardInterrupt and calls `sys.exit(1)`. Both pass through the callbacks' public `on_exception` hook first,
which is where `Interruption` learns which signal it was. `last.ckpt` is the one of the last finished epoch
(written whole by detr_ft.checkpoints.atomic_write), so resuming repeats at most the interrupted epoch.
"""

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from detr_ft.training.reports.summary import RunSummary, print_summary

EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}  # what a shell reports: 130, 143


class Interruption(pl.Callback):
    """Remembers which signal stopped `trainer.fit` (None: it was not a signal)."""

    def __init__(self):
        self.signal_name: str | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.signal_name = "SIGINT"
        elif isinstance(exception, SIGTERMException):
            self.signal_name = "SIGTERM"

    def reason(self, last_checkpoint: str) -> str:
        if last_checkpoint and Path(last_checkpoint).is_file():
            return f"interrupted by {self.signal_name}; resumable from {last_checkpoint} (its last finished epoch)"
        return f"interrupted by {self.signal_name} before the first epoch ended: no last.ckpt to resume from"

    @contextmanager
    def exits_honestly(self, logger: MLFlowLogger | None, summarise: Callable[[], RunSummary]) -> Iterator[None]:
        """Around `trainer.fit`: a signal prints the run's summary (`summarise()`) with why it stopped, ends the
        MLflow run KILLED with that reason and exits 130 / 143; any other exit goes on up unchanged."""
        try:
            yield
        except SystemExit:
            if self.signal_name is None:
                raise
            summary = summarise()
            summary.stop_reason = self.reason(summary.last_checkpoint)
            if not (summary.last_checkpoint and Path(summary.last_checkpoint).is_file()):
                summary.commands.pop("resume it", None)  # nothing to resume: the same command starts over
            print_summary(summary)
            mark_killed(logger, summary.stop_reason)
            raise SystemExit(EXIT_CODES[self.signal_name]) from None


def mark_killed(logger: MLFlowLogger | None, reason: str) -> None:
    """The MLflow run ends KILLED with why (Lightning has just closed it FAILED, without a reason)."""
    if logger is None:
        return
    client = logger.experiment
    client.set_tag(logger.run_id, "stop_reason", reason)
    client.set_tag(logger.run_id, "status_error", reason)
    client.set_terminated(logger.run_id, status="KILLED")
