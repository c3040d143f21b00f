"""Lightning's checkpoint reads and writes, through this package: files written whole or not at all, and a
resume's checkpoint handed over as train() read it, so the file is read once."""

from pathlib import Path

from lightning_fabric.plugins import TorchCheckpointIO

from detr_ft.checkpoints.checkpoint_file import Checkpoint, save_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer through `save_atomically`; its reader serves a handed-over file once."""

    def __init__(self) -> None:
        super().__init__()
        self._handed_over: dict[Path, dict] = {}

    def hand_over(self, checkpoint: Checkpoint) -> None:
        self._handed_over[checkpoint.path.resolve()] = checkpoint.contents

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path, *args, **kwargs) -> dict:
        contents = self._handed_over.pop(Path(path).resolve(), None)
        return contents if contents is not None else super().load_checkpoint(path, *args, **kwargs)


def resume_path(trainer, resumed: Checkpoint | None) -> str | None:
    """`ckpt_path` for `trainer.fit`; the checkpoint already read goes to the trainer's writer, which serves it
    (a trainer configured without that writer reads the file itself)."""
    if resumed is None:
        return None
    if isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
        trainer.strategy.checkpoint_io.hand_over(resumed)
    return str(resumed.path)
