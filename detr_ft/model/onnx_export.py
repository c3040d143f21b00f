"""DETR as an ONNX graph: `images` [B, 3, H, W] (normalised as for the PyTorch model) and `mask` [B, H, W]
(bool, True on padding) in; `pred_logits` [B, Q, K+1] (softmax head) or [B, Q, K] (sigmoid head) and
`pred_boxes` [B, Q, 4] (cx, cy, w, h in [0, 1] of the unpadded image) out. Batch size, height and width stay
dynamic: the position encoding and the backbone's padding handling are computed from the mask inside the
graph, so any size gives the PyTorch model's answer. The file's metadata says how to read the logits
(`detr_ft.classification`: softmax | sigmoid, `detr_ft.num_classes`: K; `head_form(path)` reads them back).

Written with torch.onnx's torch.export-based exporter (the default since torch 2.9; the TorchScript one is
deprecated), which needs the `onnx` and `onnxscript` packages (`pip install 'detr_ft[onnx]'`).
"""

from pathlib import Path

import torch
from torch import nn

INPUTS = ("images", "mask")
OUTPUTS = ("pred_logits", "pred_boxes")
FORM_KEY, CLASSES_KEY = "detr_ft.classification", "detr_ft.num_classes"  # the graph's metadata


class DetectionOutputs(nn.Module):
    """The last decoder layer's predictions as a tuple (ONNX has no dicts; auxiliary layers are for training)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(images, mask)
        return outputs["pred_logits"], outputs["pred_boxes"]


def export_onnx(model: nn.Module, path: str | Path, image_size: int = 800, opset: int = 18) -> Path:
    """Write `model` (a DETR on the CPU) to `path` as ONNX. The graph is traced on a batch of two images of
    image_size x (image_size + 32): sizes that differ, so that no dimension is fixed to another or to 1."""
    example_size = (image_size, image_size + 32)
    example = (torch.rand(2, 3, *example_size), torch.zeros(2, *example_size, dtype=torch.bool))
    auto = torch.export.Dim.AUTO
    dynamic = {"images": {0: auto, 2: auto, 3: auto}, "mask": {0: auto, 1: auto, 2: auto}}
    with torch.no_grad():
        program = torch.onnx.export(
            DetectionOutputs(model).eval(),
            example,
            dynamo=True,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_shapes=dynamic,
            opset_version=opset,
        )
    program.model.metadata_props[FORM_KEY] = model.classification  # whoever reads the logits must know the form
    program.model.metadata_props[CLASSES_KEY] = str(model.num_classes)
    program.save(str(path))
    return Path(path)


def head_form(path: str | Path) -> tuple[str, int | None]:
    """(classification, num_classes) an exported graph records; files from before the sigmoid head: softmax."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    classes = props.get(CLASSES_KEY)
    return props.get(FORM_KEY, "softmax"), int(classes) if classes is not None else None
