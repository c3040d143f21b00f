"""The per-epoch grid of predictions against ground truth on a few validation images (a callback; logged to
MLflow); the boxes are drawn as `predict` draws them (inference/drawing.py)."""

import contextlib
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from detr_ft.data.transforms import denormalize
from detr_ft.inference.drawing import PREDICTION_COLOUR, draw_boxes
from detr_ft.model.boxes import cxcywh_to_xyxy
from detr_ft.model.postprocess import postprocess
from detr_ft.tracking.recording import log_artifact

TRUTH_COLOUR = (20, 190, 20)
BACKGROUND = (255, 255, 255)
TILE_SIDE = 320  # small validation images are enlarged to this longer side so labels stay legible

log = logging.getLogger(__name__)


def _font(size: int) -> ImageFont.ImageFont:
    # Pillow's built-in scalable font: no font file to ship or find on the user's machine.
    return ImageFont.load_default(size=size)


def _enlarged(pixels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """uint8 [3, h, w] -> (uint8 [3, h*f, w*f], f) with the longer side at least TILE_SIDE."""
    factor = max(1.0, TILE_SIDE / max(pixels.shape[1:]))
    if factor == 1.0:
        return pixels, 1.0
    size = [round(pixels.shape[1] * factor), round(pixels.shape[2] * factor)]
    enlarged = F.interpolate(pixels[None].float(), size=size, mode="bilinear", align_corners=False)
    return enlarged[0].round().clamp(0, 255).to(torch.uint8), factor


def _header(width: int, threshold: float) -> Image.Image:
    """A title strip naming the two columns in their box colours."""
    font = _font(16)
    strip = Image.new("RGB", (width, 28), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw.text((6, 5), f"predictions (score >= {threshold:.2f})", fill=PREDICTION_COLOUR, font=font)
    draw.text((width // 2 + 6, 5), "ground truth", fill=TRUTH_COLOUR, font=font)
    return strip


def prediction_grid(
    images: torch.Tensor,
    predictions: list[dict],
    targets: list[dict],
    class_names: list[str],
    threshold: float = 0.5,
    max_images: int = 4,
) -> Image.Image:
    """One row per image (the first `max_images` of the batch): predictions above `threshold` with class
    and score on the left, ground truth on the right, under a title strip saying which is which.

    images: the padded, normalised batch [B, 3, H, W]; predictions: `detections.postprocess` output in
    each transformed image's pixels (its target "size" (h, w)); targets: with `size`, `boxes`
    (normalised cxcywh) and `labels`.
    """
    rows = []
    for image, prediction, target in list(zip(images, predictions, targets, strict=False))[:max_images]:
        height, width = (int(v) for v in target["size"])
        pixels = (denormalize(image.detach().float().cpu())[:, :height, :width] * 255).round().to(torch.uint8)
        pixels, factor = _enlarged(pixels)
        keep = prediction["scores"].cpu() >= threshold
        scores, labels = prediction["scores"].cpu()[keep].tolist(), prediction["labels"].cpu()[keep].tolist()
        predicted = draw_boxes(
            pixels,
            prediction["boxes"].cpu()[keep] * factor,
            [f"{class_names[c]} {s:.2f}" for c, s in zip(labels, scores, strict=True)],
            PREDICTION_COLOUR,
        )
        scale = torch.tensor([width, height, width, height], dtype=torch.float32) * factor
        truth = draw_boxes(
            pixels,
            cxcywh_to_xyxy(target["boxes"].float().cpu()) * scale,
            [class_names[int(c)] for c in target["labels"]],
            TRUTH_COLOUR,
        )
        rows.append((predicted, truth))
    if not rows:
        return Image.new("RGB", (2 * TILE_SIDE, 28), BACKGROUND)
    gap = 6
    tile_w = max(t.shape[2] for row in rows for t in row)
    tile_h = [max(t.shape[1] for t in row) for row in rows]
    header = _header(2 * tile_w + 3 * gap, threshold)
    grid = Image.new("RGB", (header.width, header.height + sum(tile_h) + gap * (len(rows) + 1)), BACKGROUND)
    grid.paste(header, (0, 0))
    y = header.height + gap
    for row, row_h in zip(rows, tile_h, strict=True):
        for column, tile in enumerate(row):
            grid.paste(Image.fromarray(tile.permute(1, 2, 0).numpy()), (gap + column * (tile_w + gap), y))
        y += row_h + gap
    return grid


class PredictionPictures(pl.Callback):
    """Each validation epoch: the first batch's predictions against its ground truth, saved as
    `<folder>/epoch_NNN.png` and logged to MLflow under `predictions/`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.failed = False  # a picture could not be written: warned once, no more tried

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero or self.failed:
            return
        images, _, targets = batch
        predictions = postprocess(outputs, [t["size"] for t in targets], pl_module.model.classification)
        picture = prediction_grid(images, predictions, targets, trainer.datamodule.class_names)
        path = self.folder / f"epoch_{trainer.current_epoch:03d}.png"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            picture.save(path)
        # A full disk surfaces from PIL's PNG writer as OSError or as "'_idat' object has no attribute 'fileno'".
        except (OSError, AttributeError) as error:
            self.failed = True
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)  # no half-written picture
            log.warning(
                "could not write prediction pictures to %s (%s: %s); training goes on without them. Free some space, "
                "or choose another hydra.run.dir, or turn them off with callbacks.prediction_pictures=null",
                self.folder,
                type(error).__name__,
                error,
            )
            return
        log_artifact(trainer.loggers, path, "predictions")
