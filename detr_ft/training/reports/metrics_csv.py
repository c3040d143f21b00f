"""`<run_dir>/metrics.csv`: every logged metric as one row (step, name, value), kept whatever happens to the
MLflow server. Lightning's CSVLogger does the writing; this only shapes its rows long (one per metric), so the
file reads the same however many metrics a run logs, and writes it beside the run's other files."""

import warnings
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only


class MetricsCsv(CSVLogger):
    """CSVLogger writing `<save_dir>/metrics.csv` with the columns name, step, value (flushed every log call:
    a run that crashes keeps every metric logged before)."""

    def __init__(self, save_dir: str):
        super().__init__(save_dir=save_dir, name="", version="", flush_logs_every_n_steps=1)

    @property
    def experiment(self):
        with warnings.catch_warnings():  # the run folder already holds Hydra's files: that is expected
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            return super().experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            super().log_metrics({"name": name, "value": float(value)}, step or 0)

    @rank_zero_only
    def log_hyperparams(self, params: Any = None, *args: Any, **kwargs: Any) -> None:
        """Nothing: the resolved config is the run folder's config.yaml."""
