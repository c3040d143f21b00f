"""The one owner of detr_ft's `.ckpt` file: what goes in, how it is written, and how it is read back for
resume, fine-tuning, predict and export. Nothing else knows its keys.

A `.ckpt` is Lightning's dictionary (`state_dict` of the LightningModule, optimizer and loop state, the
callbacks' states) plus our `detr_ft` entry (`metadata_entry`): the resolved config as YAML text, the category
map and the MLflow run, plain types only, so every file loads with `torch.load(weights_only=True)`. The model's
weights sit under the LightningModule's attribute name (`model.`). A run with an EMA of the weights
(`train.ema_decay`) adds the `ema` entry (`put_ema` / `ema_of`): the averaged parameters, by the model's own
names; `read()` then gives the EMA model's weights, which predict, export and fine-tuning use. Files are
written whole or not at all (detr_ft.checkpoints.atomic_write).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from detr_ft.checkpoints.atomic_write import atomic_path
from detr_ft.checkpoints.safe_read import CheckpointError, read_weights_file
from detr_ft.checkpoints.weight_layouts import to_our_state_dict

MODEL_PREFIX = "model."  # DetrModule keeps the DETR as `self.model`
METADATA = "detr_ft"

EMA = "ema"  # {"weights": {name: average}, "updates", "decay", "warmup_steps"}, written by the EMA callback


@dataclass
class Checkpoint:
    """A weights file as detr_ft reads it: its layout, the model's state dict under our key names, and (for
    detr_ft's own files) the stored config, category map and whether it can be resumed."""

    path: Path
    source_format: str  # detr_ft | official | huggingface
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    resumable: bool = False  # holds the optimizer and loop state of a training run
    contents: dict[str, Any] | None = field(default=None, repr=False)  # the file as read: what a resume hands on

    @property
    def config_yaml(self) -> str | None:
        return self.metadata.get("config")

    @property
    def config(self) -> DictConfig | None:
        """The stored (resolved) config of the run that wrote it."""
        return OmegaConf.create(self.config_yaml) if self.config_yaml else None

    @property
    def category_map(self) -> dict | None:
        return self.metadata.get("category_map")

    @property
    def class_names(self) -> list[str] | None:
        """The class names of the head's rows, in order (None for files from elsewhere)."""
        return list(self.category_map.get("names", [])) if self.category_map else None

    @property
    def weights(self) -> str:
        """Which weights `model_state` holds: "ema" (the run's moving average) or "raw" (the trained ones)."""
        return self.metadata.get("weights", "raw")

    @property
    def mlflow_run(self) -> dict | None:
        """{run_id, tracking_uri} of the MLflow run that wrote it (None without MLflow or in older files)."""
        return self.metadata.get("mlflow_run")


def metadata_entry(config_yaml: str, category_map: dict, mlflow_run: dict | None) -> dict[str, dict]:
    """Our entry of a checkpoint being written, ready to merge into Lightning's dictionary."""
    entry = {"config": config_yaml, "category_map": category_map}
    return {METADATA: entry | ({"mlflow_run": dict(mlflow_run)} if mlflow_run else {})}


def put_ema(checkpoint: dict, weights: dict, updates: int, decay: float, warmup_steps: float) -> None:
    """Our EMA entry in a checkpoint being written: the averaged parameters by the model's names, the number of
    optimizer steps averaged, and the settings (for a reader; a resume keeps its own)."""
    checkpoint[EMA] = {"weights": dict(weights), "updates": updates, "decay": decay, "warmup_steps": warmup_steps}


def ema_of(checkpoint: dict) -> tuple[dict[str, torch.Tensor], int] | None:
    """(averaged parameters, optimizer steps averaged) of a checkpoint being loaded; None when it has no EMA."""
    entry = checkpoint.get(EMA)
    return None if entry is None else (entry["weights"], int(entry["updates"]))


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
        return Checkpoint(path, "detr_ft", state, metadata, resumable, contents)
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


def save_atomically(contents: Any, path: str | Path) -> Path:
    """torch.save, whole or not at all: an interrupted or failed write (killed, disk full) never leaves a
    half-written file under `path`, and the previous file stays whole."""
    path = Path(path)
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            torch.save(contents, file)
    except OSError as error:
        kept = "the previous file is intact" if path.exists() else "nothing was written"
        raise OSError(error.errno, f"could not write checkpoint {path} ({error.strerror or error}); {kept}") from error
    return path


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
