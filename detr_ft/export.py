"""`python -m detr_ft.export checkpoint=RUN/checkpoints/last.ckpt output=small.ckpt [half=true]`

Writes a weights-only copy of a detr_ft checkpoint (model weights, config and category map; no optimizer
or loop state): a few MB that `train.checkpoint_path` and `detr_ft.predict` accept. `make pretrain` uses it
to produce detr_ft/assets/synthetic_pretrained.ckpt.
"""

import sys

from omegaconf import OmegaConf

from detr_ft.training.checkpoints import export_weights

VALID_KEYS = {"checkpoint", "output", "half", "overwrite"}


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
