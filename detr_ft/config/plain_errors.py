"""A mistake in what the user gave (a config value out of range, a refused dataset, an image that does not
decode, a checkpoint that does not fit) prints its one clear line, `Error: ...`, and exits 1: not Hydra's
traceback of our own frames above it. HYDRA_FULL_ERROR=1 still shows the whole traceback; a sweep's job still
fails as an exception, so that the sweep's other jobs go on. Anything else (a bug) keeps its traceback."""

import os
import sys
from collections.abc import Callable
from typing import Any

from detr_ft.config.errors import ConfigError


def _plain_kinds() -> tuple[type[BaseException], ...]:
    # Imported when an error is being reported: `--help` and a misspelt key's error stay free of torch.
    from detr_ft.checkpoints.safe_read import CheckpointError
    from detr_ft.data.formats import DatasetError
    from detr_ft.data.images import BadImageError
    from detr_ft.training.guards.run_lock import RunFolderBusy

    return ConfigError, DatasetError, BadImageError, CheckpointError, RunFolderBusy


def plain_error(error: BaseException) -> BaseException | None:
    """The user's mistake behind `error` (Hydra's instantiate and Lightning wrap some), or None: a bug."""
    kinds, seen = _plain_kinds(), set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _in_a_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and str(HydraConfig.get().mode).endswith("MULTIRUN")


def reported_plainly(task: Callable[..., Any]) -> Callable[..., Any]:
    """`task(cfg)`, where a user's mistake ends the command with its one line on stderr and exit code 1."""

    def run(cfg: Any) -> Any:
        try:
            return task(cfg)
        except Exception as error:
            mistake = plain_error(error)
            if mistake is None or os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_a_sweep():
                raise
            print(f"Error: {mistake}", file=sys.stderr)
            raise SystemExit(1) from None

    return run
