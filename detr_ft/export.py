"""`python -m detr_ft.export checkpoint=RUN/checkpoints/last.ckpt output=small.ckpt [half=true] [overwrite=false]`
(a Hydra app over conf/export.yaml: `--help` lists the keys, `--cfg job` prints them)

Writes a weights-only copy of a detr_ft checkpoint (model weights, config and category map; no optimizer
or loop state): a few MB that `train.checkpoint_path` and `detr_ft.predict` accept. `make pretrain` uses it
to produce detr_ft/assets/synthetic_pretrained.ckpt.
"""

import sys

import hydra
from omegaconf import DictConfig

from detr_ft.config import config_dir, exit_if_missing
from detr_ft.training.checkpoints import export_weights


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.export")
    try:
        path = export_weights(cfg.checkpoint, cfg.output, cfg.half, cfg.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:  # CheckpointError is a ValueError
        sys.exit(f"error: {error}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
