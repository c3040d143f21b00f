"""A finished run is not resumed: `train.resume_from` on a run that trained all its epochs would train nothing,
exit 0 and leave an empty run folder behind. It stops at once, saying what to use instead."""

from pathlib import Path

import torch

from detr_ft.plain_errors import ConfigError


def refuse_finished_run(resume_path: Path | None, epochs: int) -> None:
    """Raises ConfigError when `resume_path`'s run has finished `epochs` epochs (train.epochs of this command)."""
    if resume_path is None:
        return
    saved = torch.load(resume_path, map_location="cpu", weights_only=True)
    done = int(saved.get("epoch", -1)) + 1  # last.ckpt is written when an epoch ends: its index counts from 0
    if done >= epochs:
        raise ConfigError(
            f"train.resume_from: {resume_path} is a finished run ({done} of train.epochs={epochs} epochs done): "
            f"there is nothing to resume. To train from its weights in a new run, use "
            f"train.checkpoint_path={resume_path}; to train this run for longer, raise train.epochs above {done}."
        )
