"""`python -m detr_ft.predict checkpoint=PATH input=FOLDER_OR_IMAGE [threshold=0.7] [output=predictions]
[device=auto]` (a Hydra app over conf/predict.yaml: `--help` lists the keys, `--cfg job` prints them)

Runs a detr_ft checkpoint (a training `.ckpt` or a `detr_ft.export` copy) on one image or on every image
of a folder (jpg, jpeg, png, bmp, webp; not its sub-folders) and writes, into the output folder:
`detections.json` (COCO results format plus `file_name` and `category_name`; boxes in the original
image's pixels, category ids of the annotation file the model was trained on) and a copy of each image
with its boxes, class names and scores drawn. Input images are never modified; an existing non-empty
output folder is never written into (a numbered sibling, `predictions_1`, ... is used instead).
"""

import sys

from omegaconf import DictConfig

from detr_ft.config.command_line import hydra_app
from detr_ft.config.schema import exit_if_missing


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.predict")
    # Imported when the command runs: `--help` and a misspelt key's error load no torch or MLflow.
    from detr_ft import tracking
    from detr_ft.inference.image_folder import predict

    try:
        checkpoint = cfg.checkpoint
        if tracking.is_run_reference(checkpoint):  # runs:/..., models:/NAME@best, a run id
            checkpoint = tracking.resolve_checkpoint_reference(checkpoint, cfg.tracking_uri)
        predict(checkpoint, cfg.input, cfg.threshold, cfg.output, cfg.device)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError and BadImageError are ValueErrors
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
