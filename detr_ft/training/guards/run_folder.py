"""Guards on a run's folder, checked before any data is read: never overwrite another run's checkpoints, one run
per folder at a time (run_lock.py), and say at once when the checkpoint folder cannot be written or its disk
is too full. `RunFolderGuard` runs the first two as a Hydra callback, before Hydra writes `.hydra/` into the
folder, so a refused run leaves the other run's `.hydra/config.yaml` and `overrides.yaml` as they were."""

import errno
import os
import shutil
from pathlib import Path

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from detr_ft.training.guards import run_lock


def refuse_to_overwrite(run_dir: str | Path, resuming: bool) -> None:
    """A run folder reused by hand (hydra.run.dir=...) must not overwrite another run's checkpoints."""
    folder = Path(run_dir) / "checkpoints"
    if not resuming and folder.is_dir() and any(folder.glob("*.ckpt")):
        raise FileExistsError(
            f"{folder} already holds checkpoints of an earlier run; choose another hydra.run.dir, or continue "
            f"that run with train.resume_from={folder / 'last.ckpt'}"
        )


def checkpoint_bytes(model: torch.nn.Module, stages_that_train: list[str] | None = None, ema: bool = False) -> int:
    """About what one training checkpoint of `model` takes: its weights, AdamW's two moments for each parameter
    outside the backbone and in the backbone's `stages_that_train` (None: every trainable stage; a frozen
    parameter has no optimizer state) and, with `ema`, the averaged copy. Within 10% of detr_tiny's files."""
    size = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    backbone = getattr(model, "backbone", None)
    in_backbone = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    stages = getattr(backbone, "trainable_stages", []) if stages_that_train is None else stages_that_train
    trains = {id(p) for stage in stages for p in backbone.stage_parameters(stage)}
    moments = [p for p in model.parameters() if id(p) in trains or (id(p) not in in_backbone and p.requires_grad)]
    return size(model.state_dict().values()) + 2 * size(moments) + (size(model.parameters()) if ema else 0)


def check_run_folder(folder: str | Path, model: torch.nn.Module, checkpoint_size: int | None = None) -> None:
    """Before training: the checkpoint folder can be created and written, and its disk has room for the best
    and the last checkpoint plus the temporary copy a save writes first. Raises OSError naming the folder."""
    folder = Path(folder)
    fix = "choose another folder with hydra.run.dir=... (sweeps: hydra.sweep.dir=...)"
    probe = folder / f".write_test_{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"detr_ft")
        probe.unlink()
    except OSError as error:
        raise OSError(error.errno, f"cannot write checkpoints to {folder}: {error.strerror or error}; {fix}") from None
    needed, free = 3 * (checkpoint_size or checkpoint_bytes(model)), shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"{folder} has {free / 2**20:.0f} MiB free but this model's checkpoints need about {needed / 2**20:.0f} "
            f"MiB (best + last + the temporary copy of a save); free some space or {fix}",
        )


def _resuming(config: DictConfig) -> bool:
    return bool(config.get("train", {}).get("resume_from"))


class RunFolderGuard(Callback):
    """Hydra callback (conf/config.yaml, hydra.callbacks). A single run is checked and locked in `on_run_start`,
    which Hydra calls before it writes `.hydra/` (run_job saves the config before `on_job_start`); a sweep's
    folder is checked in `on_multirun_start` and each job's folder locked in `on_job_start`."""

    def __init__(self):
        self._taken: list[Path] = []

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._guard(Path(str(config.hydra.run.dir)), config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        self._release()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        for job_dir in sorted(sweep_dir.glob("*/checkpoints")) if not _resuming(config) else []:
            try:
                refuse_to_overwrite(job_dir.parent, resuming=False)
            except FileExistsError as error:
                raise SystemExit(f"Error: {error}") from None

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if str(config.hydra.mode).endswith("MULTIRUN"):  # a single run's folder is locked already
            self._guard(Path(str(config.hydra.runtime.output_dir)), config)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if str(config.hydra.mode).endswith("MULTIRUN"):
            self._release()
            run_lock.release(str(config.hydra.runtime.output_dir))  # taken as Hydra named it (job_folder_lock)

    def _guard(self, folder: Path, config: DictConfig) -> None:
        if run_lock.is_secondary_process():  # a DDP worker re-running the command: rank 0 holds the folder
            return
        try:
            refuse_to_overwrite(folder, resuming=_resuming(config))
            if run_lock.hold(folder):
                self._taken.append(folder)
        except OSError as error:  # FileExistsError, RunFolderBusy, an unwritable folder
            # Hydra turns a callback's Exception into a warning and runs the job anyway: SystemExit stops it.
            raise SystemExit(f"Error: {error}") from None

    def _release(self) -> None:
        while self._taken:
            run_lock.release(self._taken.pop())
