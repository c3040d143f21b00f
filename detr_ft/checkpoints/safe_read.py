"""A weights file read without running code from it. The bottom layer of checkpoints/, below model/: the
backbone reads its own pretrained file through it."""

import argparse
from pathlib import Path

import torch

from detr_ft.checkpoints.signature import not_a_checkpoint, pickled_code


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the path and the reason."""


def read_weights_file(path: str | Path) -> dict:
    """The file's contents, loaded without running any code from it (safetensors or weights_only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        # Official DETR *training* checkpoints hold their argparse.Namespace: the one type allowed beyond tensors.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's errors for a bad file range from KeyError to UnpicklingError
        if reason := not_a_checkpoint(path):
            raise CheckpointError(f"{path} is not a checkpoint ({reason})") from None
        if code := pickled_code(path):  # read from the pickle's opcodes, never run
            raise CheckpointError(
                f"refused to load {path}: it needs pickled Python code to load ({code}); detr_ft never executes "
                "code from a checkpoint: re-save it as a plain state dict (tensors, as model.state_dict() returns)."
            ) from None
        first = str(error).splitlines()[0] if str(error) else type(error).__name__  # not torch's unsafe advice
        raise CheckpointError(f"could not read checkpoint {path} (damaged or truncated?): {first}") from None
