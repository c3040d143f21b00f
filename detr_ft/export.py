"""`python -m detr_ft.export checkpoint=RUN output=small.ckpt [half=true] [overwrite=false]`, or `format=onnx
output=model.onnx` (a Hydra app over conf/export.yaml: `--help` lists the keys, `--cfg job` prints them)

format=ckpt (the default) writes a weights-only copy of a detr_ft checkpoint (model weights, config and category
map; no optimizer or loop state): a few MB that `train.checkpoint_path` and `detr_ft.predict` accept.
`make pretrain` uses it to produce detr_ft/assets/synthetic_pretrained.ckpt.
format=onnx writes the model as an ONNX graph for onnxruntime and other runtimes (detr_ft/model/onnx_export.py).
"""

import sys
from pathlib import Path

from omegaconf import DictConfig

from detr_ft.checkpoints.atomic_write import atomic_path
from detr_ft.config.command_line import hydra_app
from detr_ft.config.schema import exit_if_missing

FORMATS = ("ckpt", "onnx")


def export_to_onnx(checkpoint: str, output: str, image_size: int, opset: int, overwrite: bool) -> Path:
    """The checkpoint's model (rebuilt from its stored config, as predict does) as ONNX, written to a temporary
    name and renamed: an existing file is replaced only with overwrite, and never left half-written."""
    target = Path(output)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=true to replace it or choose another output=")
    from detr_ft.inference.detector import Detector  # after the check: a refusal loads no torch
    from detr_ft.model.onnx_export import export_onnx

    model = Detector(checkpoint, device="cpu").model
    with atomic_path(target) as temporary:
        export_onnx(model, temporary, image_size, opset)
    return target


@hydra_app("export")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.export")
    if cfg.format not in FORMATS:
        sys.exit(f"error: format={cfg.format} is not one of {', '.join(FORMATS)}")
    try:
        if cfg.format == "onnx":
            path = export_to_onnx(cfg.checkpoint, cfg.output, cfg.image_size, cfg.opset, cfg.overwrite)
        else:
            # Imported when the command runs: `--help` and a misspelt key's error load no torch or MLflow.
            from detr_ft.checkpoints.checkpoint_file import export_weights

            path = export_weights(cfg.checkpoint, cfg.output, cfg.half, cfg.overwrite)
    except ModuleNotFoundError as error:
        sys.exit(f"error: format=onnx needs {error.name}: pip install 'detr_ft[onnx]' (onnx, onnxscript, onnxruntime)")
    except (FileNotFoundError, FileExistsError, ValueError) as error:  # CheckpointError is a ValueError
        sys.exit(f"error: {error}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if cfg.format == "onnx":
        from detr_ft.model.onnx_export import head_form

        form, _ = head_form(path)
        logits = "[B, Q, K+1], softmax; the last is no object" if form == "softmax" else "[B, Q, K], one sigmoid each"
        print(
            "inputs: images float32 [B, 3, H, W] (normalised as predict does), mask bool [B, H, W] (True on padding); "
            f"outputs: pred_logits {logits} (metadata detr_ft.classification={form}), pred_boxes [B, Q, 4] "
            "(cx, cy, w, h in [0, 1])"
        )


if __name__ == "__main__":
    main()
