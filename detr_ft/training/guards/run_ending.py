"""However a run ends early, its MLflow run ends with it, never left RUNNING: an error marks it FAILED with the
message; Ctrl-C or SIGTERM outside `trainer.fit` (while weights load, the model is built, the results are
uploaded) marks it KILLED with the reason as its `stop_reason` tag and exits 130 / 143. Inside `trainer.fit`,
Lightning catches both signals and signals.Interruption ends the run the same way.

The MLflow run is made at the logger's first use: `without_a_run()` around the data's reading means a refused
dataset (or a Ctrl-C while it is read) makes no run at all."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pytorch_lightning.loggers import MLFlowLogger

from detr_ft.training.guards.signals import EXIT_CODES, mark_killed


class Terminated(BaseException):
    """SIGTERM outside `trainer.fit` (a BaseException, as KeyboardInterrupt is: no `except Exception` swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


class RunEnding:
    """Around a training run: `recorded()` ends its MLflow run as it ended; `without_a_run()` and `during_fit()`
    mark the stretches where that is done otherwise."""

    def __init__(self, logger: MLFlowLogger | None):
        self.logger = logger
        self._unrecorded: BaseException | None = None  # an error raised where no run should be made for it

    def _has_run(self) -> bool:
        return self.logger is not None and getattr(self.logger, "started", True)

    @contextmanager
    def recorded(self) -> Iterator[None]:
        handles_sigterm = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if handles_sigterm else None
        try:
            yield
        except Exception as error:
            if error is not self._unrecorded:
                from detr_ft import tracking

                tracking.mark_failed(self.logger, error)
            raise
        except (KeyboardInterrupt, Terminated) as interruption:
            name = "SIGINT" if isinstance(interruption, KeyboardInterrupt) else "SIGTERM"
            if self._has_run():
                mark_killed(self.logger, f"interrupted by {name} outside trainer.fit (before or after training)")
            raise SystemExit(EXIT_CODES[name]) from None
        finally:
            if handles_sigterm:
                signal.signal(signal.SIGTERM, previous)

    @contextmanager
    def without_a_run(self) -> Iterator[None]:
        """An error here makes no MLflow run (where none exists yet): the logger is not used before it."""
        try:
            yield
        except Exception as error:
            if not self._has_run():
                self._unrecorded = error
            raise

    @contextmanager
    def during_fit(self) -> Iterator[None]:
        """Lightning's own SIGTERM handling during `trainer.fit` (it would also call the handler found in place)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        ours = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, ours)
