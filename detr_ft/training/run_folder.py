"""Guards on a run's folder, checked before any data is read: never overwrite another run's checkpoints, and
say at once when the checkpoint folder cannot be written or its disk is too full."""

import errno
import os
import shutil
from pathlib import Path

import torch


def refuse_to_overwrite(run_dir: str | Path, resuming: bool) -> None:
    """A run folder reused by hand (hydra.run.dir=...) must not overwrite another run's checkpoints."""
    folder = Path(run_dir) / "checkpoints"
    if not resuming and folder.is_dir() and any(folder.glob("*.ckpt")):
        raise FileExistsError(
            f"{folder} already holds checkpoints of an earlier run; choose another hydra.run.dir, or continue "
            f"that run with train.resume_from={folder / 'last.ckpt'}"
        )


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """About what one training checkpoint of `model` takes: its weights and AdamW's two moments per weight."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) * 3


def check_run_folder(folder: str | Path, model: torch.nn.Module) -> None:
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
    needed, free = 3 * checkpoint_bytes(model), shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"{folder} has {free / 2**20:.0f} MiB free but this model's checkpoints need about {needed / 2**20:.0f} "
            f"MiB (best + last + the temporary copy of a save); free some space or {fix}",
        )
