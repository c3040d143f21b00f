"""`python -m detr_ft.export checkpoint=RUN/checkpoints/last.ckpt output=small.ckpt [half=true]`

Writes a weights-only copy of a detr_ft checkpoint (model weights, config and category map; no optimizer
or loop state): a few MB that `train.checkpoint_path` and `detr_ft.predict` accept. `make pretrain` uses it
to produce detr_ft/assets/synthetic_pretrained.ckpt.
"""

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from detr_ft.model.checkpoints import read_checkpoint

VALID_KEYS = {"checkpoint", "output", "half", "overwrite"}


def export_weights(checkpoint: str | Path, output: str | Path, half: bool = True, overwrite: bool = False) -> Path:
    source, target = Path(checkpoint), Path(output)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=true to replace it or choose another output=")
    saved = read_checkpoint(source)
    if "state_dict" not in saved or "detr_ft" not in saved:
        raise ValueError(f"{source} is not a detr_ft checkpoint (it has no 'state_dict'/'detr_ft' entries)")
    state = {
        key: value.half() if half and value.is_floating_point() else value
        for key, value in saved["state_dict"].items()
        if key.startswith("model.")
    }
    metadata = {k: v for k, v in saved["detr_ft"].items() if k in ("config", "category_map")}
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(target.suffix + ".tmp")
    torch.save({"state_dict": state, "detr_ft": metadata, "epoch": saved.get("epoch")}, temporary)
    temporary.replace(target)  # atomic: an interrupted export never leaves a half-written file
    return target


def main(argv: list[str]) -> None:
    args = OmegaConf.from_cli(argv)
    unknown = set(args.keys()) - VALID_KEYS
    if unknown or "checkpoint" not in args or "output" not in args:
        sys.exit(
            f"usage: python -m detr_ft.export checkpoint=PATH output=PATH [half=true] [overwrite=false]"
            f"{'; unknown keys: ' + str(sorted(unknown)) if unknown else ''}"
        )
    path = export_weights(args.checkpoint, args.output, args.get("half", True), args.get("overwrite", False))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1:])
