"""The one owner of detr_ft's `.ckpt` file: what goes in, how it is written, and how it is read back for
resume, fine-tuning, predict and export.

A `.ckpt` is Lightning's dictionary (`state_dict` of the LightningModule, optimizer and loop state, the
callbacks' states) plus our `detr_ft` entry: the resolved config as YAML text and the category map, plain
types only, so every file loads with `torch.load(weights_only=True)`. The model's weights sit under the
LightningModule's attribute name (`model.`); nothing outside this module knows that prefix. A run with an EMA
of the weights (`train.ema_decay`) adds the `ema` entry (detr_ft.training.ema): the averaged parameters, by
the model's own names; `read()` then gives the EMA model's weights, which predict, export and fine-tuning use.
Files are written to a temporary name and renamed, so a killed run never leaves a truncated checkpoint.
"""

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from detr_ft.model.weight_layouts import CheckpointError, read_weights_file, to_our_state_dict

MODEL_PREFIX = "model."  # DetrModule keeps the DETR as `self.model`
METADATA = "detr_ft"
EMA = "ema"  # {"weights": {name: average}, "updates", "decay", "warmup_steps"}, written by the EMA callback


def monitor_mode(monitor: str) -> str:
    """Whether the monitored metric is better lower (losses) or higher (mAP, ...): the best checkpoint and
    early stopping read it the same way."""
    return "min" if "loss" in monitor else "max"


@dataclass
class Checkpoint:
    """A weights file as detr_ft reads it: its layout, the model's state dict under our key names, and (for
    detr_ft's own files) the stored config, category map and whether it can be resumed."""

    path: Path
    source_format: str  # detr_ft | official | huggingface
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    resumable: bool = False  # holds the optimizer and loop state of a training run

    @property
    def config_yaml(self) -> str | None:
        return self.metadata.get("config")

    @property
    def category_map(self) -> dict | None:
        return self.metadata.get("category_map")

    @property
    def weights(self) -> str:
        """Which weights `model_state` holds: "ema" (the run's moving average) or "raw" (the trained ones)."""
        return self.metadata.get("weights", "raw")

    @property
    def mlflow_run(self) -> dict | None:
        """{run_id, tracking_uri} of the MLflow run that wrote it (None without MLflow or in older files)."""
        return self.metadata.get("mlflow_run")


def read(path: str | Path) -> Checkpoint:
    """Read any supported weights file once: a detr_ft `.ckpt` (training or exported), an official DETR `.pth`
    or a Hugging Face DETR file. Raises CheckpointError naming the file."""
    path = Path(path).expanduser()
    contents = read_weights_file(path)
    if "state_dict" in contents and METADATA in contents:
        state = {
            k.removeprefix(MODEL_PREFIX): v for k, v in contents["state_dict"].items() if k.startswith(MODEL_PREFIX)
        }
        resumable = "optimizer_states" in contents
        metadata = dict(contents[METADATA])
        if EMA in contents:  # the run averaged its weights: those are the model (frozen parts stay the raw ones)
            state |= contents[EMA]["weights"]
            metadata["weights"] = "ema"
        return Checkpoint(path, "detr_ft", state, metadata, resumable)
    try:
        source_format, state = to_our_state_dict(contents)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return Checkpoint(path, source_format, state)


def in_run_folder(path: str | Path, which: str) -> Path:
    """A run folder (or its checkpoints/ folder) -> its `best` or `last` checkpoint; any other path as given.
    Run folders need no quoting on the command line, unlike the guide's `best_epoch=6-...ckpt` names."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = sorted(folder.glob("last.ckpt" if which == "last" else "best_*.ckpt"))
    if len(found) != 1:
        raise CheckpointError(
            f"{path} is a folder, but {folder} holds {len(found)} {which} checkpoint(s) "
            f"({[p.name for p in folder.glob('*.ckpt')]}); give the .ckpt file itself"
        )
    return found[0]


def check_resumable(path: str | Path) -> Path:
    """`train.resume_from` (a file, or a run folder: its last.ckpt) must be a detr_ft training checkpoint
    (optimizer, epoch, strategy state)."""
    checkpoint = read(in_run_folder(path, "last"))
    if not checkpoint.resumable:
        raise CheckpointError(
            f"train.resume_from: {checkpoint.path} is not a detr_ft training checkpoint (no optimizer/epoch state). "
            "To start from its weights with a fresh optimizer, use train.checkpoint_path instead."
        )
    return checkpoint.path


def refuse_to_overwrite(run_dir: Path, resuming: bool) -> None:
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


def save_atomically(contents: Any, path: str | Path) -> Path:
    """torch.save to `<path>.tmp`, flushed to disk, then renamed: an interrupted or failed write (killed, disk
    full) never leaves a half-written file under `path`, and the previous file stays whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(contents, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        kept = "the previous file is intact" if path.exists() else "nothing was written"
        raise OSError(error.errno, f"could not write checkpoint {path} ({error.strerror or error}); {kept}") from error
    finally:
        temporary.unlink(missing_ok=True)  # left only when the save failed: never a half-written file
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through `save_atomically`."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        save_atomically(checkpoint, path)


class RunMetadata(pl.Callback):
    """Adds the resolved config (YAML text), the category map and the MLflow run ({run_id, tracking_uri}: what
    a resume logs into) to every checkpoint the run writes."""

    def __init__(self, config_yaml: str, mlflow_run: dict[str, str] | None = None):
        self.config_yaml = config_yaml
        self.mlflow_run = mlflow_run

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[METADATA] = {
            "config": self.config_yaml,
            "category_map": trainer.datamodule.category_map.to_dict(),
            **({"mlflow_run": dict(self.mlflow_run)} if self.mlflow_run else {}),
        }


class BestCheckpoint(ModelCheckpoint):
    """`best_epoch=E-step=S-<metric>=V.ckpt` (val/mAP is written val_mAP: no '/' in file names), the best epoch
    by `monitor` (min for losses, max otherwise). Remembers the best epoch and the validation metrics it had,
    so the run summary never parses them back out of the file name."""

    def __init__(self, dirpath: str | Path, monitor: str):
        super().__init__(
            dirpath=dirpath,
            filename=f"best_epoch={{epoch}}-step={{step}}-{monitor.replace('/', '_')}={{{monitor}:.4f}}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=monitor_mode(monitor),
            save_top_k=1,
            save_on_train_epoch_end=monitor.startswith("train") or None,
        )
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}

    def _update_best_and_save(self, current, trainer, monitor_candidates) -> None:
        # Lightning calls this only when `current` beats the best so far (top 1): this epoch is the new best.
        super()._update_best_and_save(current, trainer, monitor_candidates)
        self.best_epoch = trainer.current_epoch
        self.best_metrics = {k: float(v) for k, v in monitor_candidates.items() if k.startswith("val/")}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch, "best_metrics": dict(self.best_metrics)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")
        self.best_metrics = dict(state_dict.get("best_metrics", {}))


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`, rewritten after every epoch: what `train.resume_from` continues.

    Its own callback (no monitor, top 1, one name): Lightning's `save_last=True` rewrites last.ckpt only in
    epochs where the best file changes, so it would hold the best epoch and a resume would go back in time.
    """

    def __init__(self, dirpath: str | Path, monitor: str):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=monitor.startswith("train") or None,
        )


def export_weights(checkpoint: str | Path, output: str | Path, half: bool = True, overwrite: bool = False) -> Path:
    """A weights-only copy of a detr_ft checkpoint (model weights, config, category map; no optimizer or loop
    state): a few MB that `train.checkpoint_path` and `detr_ft.predict` accept. A run with EMA exports its
    EMA weights (and says so in the copy's metadata)."""
    target = Path(output)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=true to replace it or choose another output=")
    source = read(in_run_folder(checkpoint, "best"))
    if source.source_format != "detr_ft":
        raise CheckpointError(f"{source.path} is not a detr_ft checkpoint (it has no stored config and category map)")
    state = {
        MODEL_PREFIX + key: value.half() if half and value.is_floating_point() else value
        for key, value in source.model_state.items()
    }
    metadata = {k: v for k, v in source.metadata.items() if k in ("config", "category_map", "weights")}
    return save_atomically({"state_dict": state, METADATA: metadata}, target)
